package policy

import (
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCatalogue(t *testing.T) {
	want := map[string]struct {
		method, path, scope string
		stateChanging       bool
	}{
		"list_users":        {"GET", "/api/v1/users", "okta.users.read", false},
		"get_user":          {"GET", "/api/v1/users/{id}", "okta.users.read", false},
		"create_user":       {"POST", "/api/v1/users", "okta.users.manage", true},
		"deactivate_user":   {"POST", "/api/v1/users/{id}/lifecycle/deactivate", "okta.users.manage", true},
		"list_groups":       {"GET", "/api/v1/groups", "okta.groups.read", false},
		"list_applications": {"GET", "/api/v1/apps", "okta.apps.read", false},
		"get_system_log":    {"GET", "/api/v1/logs", "okta.logs.read", false},
	}
	ops := Operations(SystemOkta)
	if len(ops) != len(want) {
		t.Fatalf("Operations(okta) has %d entries, want %d", len(ops), len(want))
	}
	if !slices.IsSortedFunc(ops, func(a, b Operation) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Operations(okta) is not sorted by Name")
	}
	for _, op := range ops {
		w, ok := want[op.Name]
		if !ok {
			t.Errorf("unexpected operation %q", op.Name)
			continue
		}
		got := [4]any{op.Method, op.PathTemplate, op.Scope, op.StateChanging}
		if diff := cmp.Diff([4]any{w.method, w.path, w.scope, w.stateChanging}, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", op.Name, diff)
		}
		if op.SystemType != SystemOkta {
			t.Errorf("%s: SystemType = %q", op.Name, op.SystemType)
		}
		// Every {param} in the template has a required InPath Param and vice versa.
		for _, seg := range strings.Split(op.PathTemplate, "/") {
			if name, ok := strings.CutPrefix(seg, "{"); ok {
				p, ok := op.param(strings.TrimSuffix(name, "}"))
				if !ok || p.In != InPath || !p.Required {
					t.Errorf("%s: template parameter %s has no required path Param", op.Name, seg)
				}
			}
		}
		l, ok := Lookup(SystemOkta, op.Name)
		if !ok || l.Name != op.Name {
			t.Errorf("Lookup(okta, %q) = %v, %v", op.Name, l.Name, ok)
		}
	}
}

func TestLookupUnknown(t *testing.T) {
	for _, tc := range []struct{ system, op string }{
		{"okta", "delete_user"}, {"okta", ""}, {"azure", "list_users"}, {"", ""},
	} {
		if _, ok := Lookup(tc.system, tc.op); ok {
			t.Errorf("Lookup(%q, %q) found an operation", tc.system, tc.op)
		}
	}
	if Operations("azure") != nil {
		t.Error("Operations(azure) != nil")
	}
	if !KnownSystemType("okta") || KnownSystemType("Okta") || KnownSystemType("") {
		t.Error("KnownSystemType: wrong answers")
	}
}

func TestCatalogueIsImmutable(t *testing.T) {
	ops := Operations(SystemOkta)
	ops[0].Name = "mutated"
	ops[0].Params[0].Name = "mutated"
	op, _ := Lookup(SystemOkta, "list_users")
	op.Params[len(op.Params)-1].Enum[0] = "mutated"
	if again := Operations(SystemOkta); again[0].Name == "mutated" || again[0].Params[0].Name == "mutated" {
		t.Error("Operations returned the catalogue itself")
	}
	if again, _ := Lookup(SystemOkta, "list_users"); again.Params[len(again.Params)-1].Enum[0] == "mutated" {
		t.Error("Lookup shares Enum slices with the catalogue")
	}
}
