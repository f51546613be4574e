package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/okta/okta-sdk-golang/v5/okta"

	"github.com/quantaseal/gateway/okta/oktatest"
)

// sdkClient builds the unchanged official SDK (v5.0.2) pointed at the fake Envoy with a
// qs_live_ key in SSWS mode. okta-api.md §4: every relevant setter explicitly, a clean
// HOME and OKTA_* environment, and cfg.Host set after NewConfiguration because the SDK
// drops the port of WithOrgUrl.
func sdkClient(t *testing.T, baseURL, token string) *okta.APIClient {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OKTA_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	cfg, err := okta.NewConfiguration(
		okta.WithOrgUrl(baseURL), okta.WithToken(token), okta.WithAuthorizationMode("SSWS"),
		okta.WithCache(false), okta.WithRateLimitMaxRetries(0), okta.WithRequestTimeout(60),
	)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = strings.TrimPrefix(baseURL, "http://")
	return okta.NewAPIClient(cfg)
}

// auditHeader checks that an answer carries X-QuantaSeal-Audit-Event.
func auditHeader(t *testing.T, what string, resp *okta.APIResponse) {
	t.Helper()
	if resp == nil || resp.Response == nil {
		t.Errorf("%s: no response", what)
		return
	}
	if id := resp.Header.Get("X-QuantaSeal-Audit-Event"); !strings.HasPrefix(id, "aud_") {
		t.Errorf("%s: X-QuantaSeal-Audit-Event = %q, want aud_…", what, id)
	}
}

// testOktaSDK is issue 6 item 1: the official SDK, unchanged but for the base URL and
// a qs_live_ token, runs every catalogue operation through the gateway, and the double
// sees only the real Okta token.
func (w *world) testOktaSDK(t *testing.T) {
	ctx := t.Context()
	before := len(w.okta.Requests())
	c := sdkClient(t, w.envoy.URL(), w.boundKeys[intSDK])

	t.Run("list_users_three_pages", func(t *testing.T) {
		users, resp, err := c.UserAPI.ListUsers(ctx).Limit(2).Execute()
		if err != nil {
			t.Fatalf("ListUsers: %v", err)
		}
		auditHeader(t, "page 1", resp)
		pages := 1
		for resp.HasNextPage() {
			next := resp.NextPage()
			if !strings.HasPrefix(next, "/api/v1/users") {
				t.Errorf("next page %q", next)
			}
			// The Link header must point back through the gateway (ARCHITECTURE.md).
			for _, l := range resp.Header.Values("Link") {
				if !strings.HasPrefix(l, "<"+w.envoy.URL()+"/") {
					t.Errorf("Link %q does not point at the gateway %s", l, w.envoy.URL())
				}
			}
			var page []okta.User
			resp, err = resp.Next(&page)
			if err != nil {
				t.Fatalf("page %d: %v", pages+1, err)
			}
			pages++
			auditHeader(t, "next page", resp)
			users = append(users, page...)
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
		}
		var ids []string
		for _, u := range users {
			ids = append(ids, u.GetId())
		}
		want := []string{oktatest.UserAlice, oktatest.UserBob, oktatest.UserCarol, oktatest.UserDave, oktatest.UserFrank, oktatest.UserSlash}
		if diff := cmp.Diff(want, ids); diff != "" {
			t.Errorf("user ids (-want +got):\n%s", diff)
		}
		if pages != 3 {
			t.Errorf("pages = %d, want 3", pages)
		}
	})

	t.Run("get_user", func(t *testing.T) {
		for _, idOrLogin := range []string{oktatest.UserBob, "bob@example.com"} {
			u, resp, err := c.UserAPI.GetUser(ctx, idOrLogin).Execute()
			if err != nil {
				t.Fatalf("GetUser(%q): %v", idOrLogin, err)
			}
			auditHeader(t, "get_user", resp)
			if u.GetId() != oktatest.UserBob {
				t.Errorf("GetUser(%q).Id = %q, want %q", idOrLogin, u.GetId(), oktatest.UserBob)
			}
		}
	})

	t.Run("create_and_deactivate_user", func(t *testing.T) {
		login := "sdk." + randHex(t, 4) + "@example.com"
		body := okta.CreateUserRequest{Profile: okta.UserProfile{
			FirstName: *okta.NewNullableString(okta.PtrString("Sdk")), LastName: *okta.NewNullableString(okta.PtrString("User")),
			Email: okta.PtrString(login), Login: okta.PtrString(login),
		}}
		u, resp, err := c.UserAPI.CreateUser(ctx).Body(body).Activate(true).Execute()
		if err != nil {
			t.Fatalf("CreateUser: %v", err)
		}
		auditHeader(t, "create_user", resp)
		if resp.StatusCode != 200 || u.GetId() == "" || u.Profile.GetLogin() != login {
			t.Fatalf("CreateUser: HTTP %d, id %q, login %q", resp.StatusCode, u.GetId(), u.Profile.GetLogin())
		}
		resp, err = c.UserAPI.DeactivateUser(ctx, u.GetId()).Execute()
		if err != nil {
			t.Fatalf("DeactivateUser: %v", err)
		}
		auditHeader(t, "deactivate_user", resp)
		if st, _ := w.okta.UserStatus(u.GetId()); st != "DEPROVISIONED" {
			t.Errorf("status at the double after deactivate = %q, want DEPROVISIONED", st)
		}
	})

	t.Run("list_groups", func(t *testing.T) {
		groups, resp, err := c.GroupAPI.ListGroups(ctx).Execute()
		if err != nil {
			t.Fatalf("ListGroups: %v", err)
		}
		auditHeader(t, "list_groups", resp)
		if len(groups) != 4 {
			t.Errorf("groups = %d, want 4", len(groups))
		}
	})

	t.Run("list_applications", func(t *testing.T) {
		apps, resp, err := c.ApplicationAPI.ListApplications(ctx).Execute()
		if err != nil {
			t.Fatalf("ListApplications: %v", err)
		}
		auditHeader(t, "list_applications", resp)
		if len(apps) != 3 {
			t.Errorf("apps = %d, want 3", len(apps))
		}
		for i, a := range apps {
			if a.GetActualInstance() == nil {
				t.Errorf("app %d did not decode", i)
			}
		}
	})

	t.Run("system_log", func(t *testing.T) {
		since := time.Date(2024, 8, 13, 0, 0, 0, 0, time.UTC)
		events, resp, err := c.SystemLogAPI.ListLogEvents(ctx).Since(since).Until(since.Add(24 * time.Hour)).Limit(2).Execute()
		if err != nil {
			t.Fatalf("ListLogEvents: %v", err)
		}
		auditHeader(t, "get_system_log", resp)
		for n := 0; resp.HasNextPage(); n++ {
			var page []okta.LogEvent
			if resp, err = resp.Next(&page); err != nil {
				t.Fatalf("log page: %v", err)
			}
			if len(page) == 0 || n > 10 {
				break
			}
			events = append(events, page...)
		}
		if len(events) != 5 || events[0].GetEventType() != "user.session.start" {
			t.Errorf("log events: %d, first %q; want 5 starting with user.session.start", len(events), firstEventType(events))
		}
	})

	t.Run("double_saw_only_the_real_token", func(t *testing.T) {
		reqs := apiRequests(w.okta.Requests()[before:])
		if len(reqs) < 10 {
			t.Fatalf("the double saw %d API requests, want at least 10", len(reqs))
		}
		for _, r := range reqs {
			if got := r.Header.Get("Authorization"); got != "SSWS "+w.oktaToken {
				t.Errorf("%s %s reached the double with Authorization %.12q…, want the sealed SSWS token", r.Method, r.Path, got)
			}
			if where := containsQSKey(r); where != "" {
				t.Errorf("%s %s: a qs_live_ key reached the double in %s", r.Method, r.Path, where)
			}
		}
	})
}

func firstEventType(events []okta.LogEvent) string {
	if len(events) == 0 {
		return ""
	}
	return events[0].GetEventType()
}

// containsQSKey reports where a request to the double carries "qs_live_".
func containsQSKey(r oktatest.Request) string {
	const marker = "qs_live_"
	for k, vs := range r.Header {
		for _, v := range vs {
			if strings.Contains(v, marker) {
				return "header " + k
			}
		}
	}
	switch {
	case strings.Contains(r.Path, marker):
		return "the path"
	case strings.Contains(r.RawQuery, marker):
		return "the query"
	case strings.Contains(string(r.Body), marker):
		return "the body"
	}
	return ""
}
