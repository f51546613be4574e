package policy

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func mustOp(t testing.TB, name string) Operation {
	t.Helper()
	op, ok := Lookup(SystemOkta, name)
	if !ok {
		t.Fatalf("no operation %q", name)
	}
	return op
}

func TestBuildRequest(t *testing.T) {
	tests := []struct {
		op, payload string
		want        UpstreamRequest
	}{
		{"list_users", ``, UpstreamRequest{Method: "GET", Path: "/api/v1/users"}},
		{"list_users", `null`, UpstreamRequest{Method: "GET", Path: "/api/v1/users"}},
		{"list_users", `{}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users"}},
		{"list_users", `{"filter": "status eq \"ACTIVE\"", "limit": 25, "search": "profile.department eq \"Engineering\""}`,
			UpstreamRequest{Method: "GET", Path: "/api/v1/users?filter=status+eq+%22ACTIVE%22&limit=25&search=profile.department+eq+%22Engineering%22"}},
		{"list_users", `{"limit": 1}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users?limit=1"}},
		{"list_users", `{"limit": 200}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users?limit=200"}},
		{"list_users", `{"limit": 2.5e1}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users?limit=25"}},
		{"list_users", `{"q": "a&b=c#d", "after": "00u2", "sortBy": "profile.lastName", "sortOrder": "desc", "limit": null}`,
			UpstreamRequest{Method: "GET", Path: "/api/v1/users?after=00u2&q=a%26b%3Dc%23d&sortBy=profile.lastName&sortOrder=desc"}},
		{"get_user", `{"id": "00ub0oNGTSWTBKOLGLNR"}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users/00ub0oNGTSWTBKOLGLNR"}},
		{"get_user", `{"id": "a.b+c@example.com"}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users/a.b+c@example.com"}},
		{"get_user", `{"id": "with space"}`, UpstreamRequest{Method: "GET", Path: "/api/v1/users/with%20space"}},
		{"create_user", `{"profile": {"login": "a@example.com", "email": "a@example.com"}, "activate": false}`,
			UpstreamRequest{Method: "POST", Path: "/api/v1/users?activate=false", Body: []byte(`{"profile":{"login":"a@example.com","email":"a@example.com"}}`)}},
		{"create_user", `{"groupIds": ["00g1"], "credentials": {"password": {"value": "x"}}, "profile": {}}`,
			UpstreamRequest{Method: "POST", Path: "/api/v1/users", Body: []byte(`{"profile":{},"credentials":{"password":{"value":"x"}},"groupIds":["00g1"]}`)}},
		{"deactivate_user", `{"id": "00u1", "sendEmail": true}`,
			UpstreamRequest{Method: "POST", Path: "/api/v1/users/00u1/lifecycle/deactivate?sendEmail=true"}},
		{"list_groups", `{"search": "type eq \"OKTA_GROUP\"", "limit": 10000}`,
			UpstreamRequest{Method: "GET", Path: "/api/v1/groups?limit=10000&search=type+eq+%22OKTA_GROUP%22"}},
		{"list_applications", `{"user_id": "00ucw2RPGIUNTDQOYPOF", "limit": 20}`,
			UpstreamRequest{Method: "GET", Path: "/api/v1/apps?filter=user.id+eq+%2200ucw2RPGIUNTDQOYPOF%22&limit=20"}},
		{"get_system_log", `{"since": "2024-08-13T00:00:00.000Z", "until": "2024-08-14T00:00:00Z", "limit": 1000, "sortOrder": "DESCENDING", "filter": "eventType eq \"user.session.start\""}`,
			UpstreamRequest{Method: "GET", Path: "/api/v1/logs?filter=eventType+eq+%22user.session.start%22&limit=1000&since=2024-08-13T00%3A00%3A00.000Z&sortOrder=DESCENDING&until=2024-08-14T00%3A00%3A00Z"}},
	}
	for _, tc := range tests {
		t.Run(tc.op+" "+tc.payload, func(t *testing.T) {
			got, err := BuildRequest(mustOp(t, tc.op), json.RawMessage(tc.payload))
			if err != nil {
				t.Fatalf("BuildRequest: %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
			u, err := url.ParseRequestURI(got.Path)
			if err != nil {
				t.Fatalf("path %q does not parse: %v", got.Path, err)
			}
			if u.RequestURI() != got.Path {
				t.Errorf("path %q does not round-trip: %q", got.Path, u.RequestURI())
			}
			// The built path must match back to the same operation.
			if op, _, err := Match(SystemOkta, got.Method, got.Path); err != nil || op.Name != tc.op {
				t.Errorf("Match(built path) = %q, %v", op.Name, err)
			}
		})
	}
}

func TestBuildRequestErrors(t *testing.T) {
	tests := []struct {
		op, payload, field string
	}{
		{"list_users", `[]`, ""},
		{"list_users", `"x"`, ""},
		{"list_users", `{`, ""},
		{"list_users", `{"limit": 1} {}`, ""},
		{"list_users", `{"limit": 1}x`, ""},
		{"list_users", "{\"q\": \"\xff\"}", ""},
		{"list_users", `{"limit": 0}`, "limit"},
		{"list_users", `{"limit": 201}`, "limit"},
		{"list_users", `{"limit": -1}`, "limit"},
		{"list_users", `{"limit": 1.5}`, "limit"},
		{"list_users", `{"limit": "25"}`, "limit"},
		{"list_users", `{"limit": true}`, "limit"},
		{"list_users", `{"limit": 1e400}`, "limit"},
		{"list_users", `{"limit": 99999999999999999999}`, "limit"},
		{"list_users", `{"q": 5}`, "q"},
		{"list_users", `{"q": ""}`, "q"},
		{"list_users", `{"q": "a\u0000b"}`, "q"},
		{"list_users", `{"sortOrder": "ASC"}`, "sortOrder"},
		{"list_users", `{"expand": "x"}`, "expand"},
		{"list_users", `{"limit": 1, "limit": 2}`, "limit"},
		{"get_system_log", `{"limit": 1001}`, "limit"},
		{"get_system_log", `{"limit": 0}`, "limit"},
		{"get_system_log", `{"since": "yesterday"}`, "since"},
		{"get_system_log", `{"sortOrder": "asc"}`, "sortOrder"},
		{"list_groups", `{"limit": 10001}`, "limit"},
		{"list_applications", `{"limit": 201}`, "limit"},
		{"list_applications", `{"user_id": "00u1\" or user.id eq \"x"}`, "user_id"},
		{"list_applications", `{"user_id": "00u 1"}`, "user_id"},
		{"list_applications", `{"user_id": "00u1", "filter": "status eq \"ACTIVE\""}`, "user_id"},
		{"get_user", `{}`, "id"},
		{"get_user", `{"id": null}`, "id"},
		{"get_user", `{"id": ""}`, "id"},
		{"get_user", `{"id": ".."}`, "id"},
		{"get_user", `{"id": "."}`, "id"},
		{"get_user", `{"id": "dom/user"}`, "id"},
		{"get_user", `{"id": "a?b"}`, "id"},
		{"get_user", `{"id": 12}`, "id"},
		{"deactivate_user", `{"sendEmail": true}`, "id"},
		{"deactivate_user", `{"id": "00u1", "sendEmail": "yes"}`, "sendEmail"},
		{"create_user", `{}`, "profile"},
		{"create_user", `{"profile": null}`, "profile"},
		{"create_user", `{"profile": "a"}`, "profile"},
		{"create_user", `{"profile": []}`, "profile"},
		{"create_user", `{"profile": {}, "credentials": "pw"}`, "credentials"},
		{"create_user", `{"profile": {}, "groupIds": "00g1"}`, "groupIds"},
		{"create_user", `{"profile": {}, "groupIds": [1]}`, "groupIds"},
		{"create_user", `{"profile": {}, "groupIds": [""]}`, "groupIds"},
		{"create_user", `{"profile": {}, "groupIds": ["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17","18","19","20","21"]}`, "groupIds"},
		{"create_user", `{"profile": {}, "activate": "true"}`, "activate"},
		{"create_user", `{"profile": {}, "type": {"id": "oty1"}}`, "type"},
	}
	for _, tc := range tests {
		t.Run(tc.op+" "+tc.payload, func(t *testing.T) {
			_, err := BuildRequest(mustOp(t, tc.op), json.RawMessage(tc.payload))
			var pe *PayloadError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want *PayloadError", err)
			}
			if pe.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", pe.Field, tc.field, err)
			}
			if pe.Message == "" {
				t.Error("empty Message")
			}
		})
	}
}

func TestBuildRequestUnknownOperation(t *testing.T) {
	var pe *PayloadError
	if _, err := BuildRequest(Operation{}, nil); !errors.As(err, &pe) || pe.Field != "operation" {
		t.Errorf("err = %v, want PayloadError on operation", err)
	}
}

func TestPayloadErrorDoesNotEchoValue(t *testing.T) {
	const pw = "hunter2-very-secret"
	_, err := BuildRequest(mustOp(t, "create_user"), json.RawMessage(`{"profile": {}, "credentials": "`+pw+`"}`))
	if err == nil {
		t.Fatal("no error")
	}
	if s := err.Error(); strings.Contains(s, pw) {
		t.Errorf("error %q echoes the value", s)
	}
}
