package policy

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMatch(t *testing.T) {
	tests := []struct {
		method, path string
		wantOp       string // "" = unknown_operation
		wantParams   map[string]string
	}{
		{"GET", "/api/v1/users", "list_users", nil},
		{"GET", "/api/v1/users?limit=1", "list_users", nil},
		{"GET", "/api/v1/users?search=profile.department%20eq%20%22Eng%22&limit=2", "list_users", nil},
		{"GET", "/api/v1/users?", "list_users", nil},
		{"POST", "/api/v1/users?activate=true", "create_user", nil},
		{"GET", "/api/v1/users/00ub0oNGTSWTBKOLGLNR", "get_user", map[string]string{"id": "00ub0oNGTSWTBKOLGLNR"}},
		{"GET", "/api/v1/users/isaac.brock@example.com", "get_user", map[string]string{"id": "isaac.brock@example.com"}},
		{"GET", "/api/v1/users/isaac.brock%40example.com", "get_user", map[string]string{"id": "isaac.brock@example.com"}},
		{"GET", "/api/v1/users/a.b+c@example.com", "get_user", map[string]string{"id": "a.b+c@example.com"}},
		{"GET", "/api/v1/users/me", "get_user", map[string]string{"id": "me"}},
		{"GET", "/api/v1/users/00u1?expand=blocks", "get_user", map[string]string{"id": "00u1"}},
		{"POST", "/api/v1/users/00u1/lifecycle/deactivate?sendEmail=false", "deactivate_user", map[string]string{"id": "00u1"}},
		{"GET", "/api/v1/groups", "list_groups", nil},
		{"GET", "/api/v1/apps?filter=user.id+eq+%2200u1%22", "list_applications", nil},
		{"GET", "/api/v1/logs", "get_system_log", nil},

		// Not in the catalogue.
		{"DELETE", "/api/v1/users/00u1", "", nil},
		{"HEAD", "/api/v1/users", "", nil},
		{"get", "/api/v1/users", "", nil},
		{"GET", "/api/v1/users/00u1/appLinks", "", nil},
		{"GET", "/api/v1/users/00u1/lifecycle/deactivate", "", nil},
		{"POST", "/api/v1/users/00u1/lifecycle/activate", "", nil},
		{"GET", "/api/v2/users", "", nil},
		{"GET", "/API/v1/users", "", nil},
		{"GET", "/api/v1/%75sers", "", nil}, // literal segments compare raw
		{"GET", "/oauth2/v1/token", "", nil},
		{"GET", "", "", nil},
		{"GET", "*", "", nil},
		{"GET", "api/v1/users", "", nil},
		{"GET", "https://acme.okta.com/api/v1/users", "", nil},

		// Malformed paths.
		{"GET", "/api/v1/users/../groups", "", nil},
		{"GET", "/api/v1/users/..", "", nil},
		{"GET", "/api/v1/users/.", "", nil},
		{"GET", "/api/v1/./users", "", nil},
		{"GET", "/api/v1/users/%2e%2e", "", nil},
		{"GET", "/api/v1/users/%2E", "", nil},
		{"GET", "/api/v1/users/a%2Fb", "", nil},
		{"GET", "/api/v1/users/a%2fb", "", nil},
		{"GET", "/api/v1/users/a%5Cb", "", nil},
		{"GET", "/api/v1/users/a%5cb", "", nil},
		{"GET", "/api/v1/users/a\\b", "", nil},
		{"GET", "/api//v1/users", "", nil},
		{"GET", "//api/v1/users", "", nil},
		{"GET", "/api/v1/users/", "", nil},
		{"GET", "/api/v1/users//00u1", "", nil},
		{"GET", "/api/v1/users/a%zzb", "", nil},
		{"GET", "/api/v1/users/a%2", "", nil},
		{"GET", "/api/v1/users/a%", "", nil},
		{"GET", "/api/v1/users/a\x00b", "", nil},
		{"GET", "/api/v1/users/a\nb", "", nil},
		{"GET", "/api/v1/users/a%00b", "", nil},
		{"GET", "/api/v1/users/a%0Ab", "", nil},
		{"GET", "/api/v1/users/a\x7fb", "", nil},
		{"GET", "/api/v1/users/a%3Fb", "", nil}, // '?' in a login: fetch by id only
		{"GET", "/api/v1/users/a%23b", "", nil},
		{"GET", "/api/v1/users#frag", "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			op, params, err := Match(SystemOkta, tc.method, tc.path)
			if tc.wantOp == "" {
				if err == nil {
					t.Fatalf("matched %q, want unknown_operation", op.Name)
				}
				if !errors.Is(err, ErrUnknownOperation) {
					t.Fatalf("err = %v, want ErrUnknownOperation", err)
				}
				var me *MatchError
				if !errors.As(err, &me) || me.Detail == "" {
					t.Fatalf("err = %#v, want *MatchError with detail", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if op.Name != tc.wantOp {
				t.Errorf("op = %q, want %q", op.Name, tc.wantOp)
			}
			if diff := cmp.Diff(tc.wantParams, params); diff != "" {
				t.Errorf("params (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMatchUnknownSystem(t *testing.T) {
	if _, _, err := Match("azure", "GET", "/api/v1/users"); !errors.Is(err, ErrUnknownOperation) {
		t.Errorf("err = %v, want ErrUnknownOperation", err)
	}
}

func TestDecide(t *testing.T) {
	listUsers, _ := Lookup(SystemOkta, "list_users")
	tests := []struct {
		name    string
		allowed []string
		op      Operation
		want    Decision
	}{
		{"allowed", []string{"get_user", "list_users"}, listUsers, Decision{Allow: true}},
		{"not listed", []string{"get_user"}, listUsers, Decision{Reason: ReasonOperationNotAllowed}},
		{"empty list denies", nil, listUsers, Decision{Reason: ReasonOperationNotAllowed}},
		{"zero operation denies", []string{""}, Operation{}, Decision{Reason: ReasonOperationNotAllowed}},
		{"case matters", []string{"LIST_USERS"}, listUsers, Decision{Reason: ReasonOperationNotAllowed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.allowed, tc.op); got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
}
