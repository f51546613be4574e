package policy

import (
	"encoding/json"
	"testing"
)

func BenchmarkMatch(b *testing.B) {
	for b.Loop() {
		if _, _, err := Match(SystemOkta, "GET", "/api/v1/users/isaac.brock%40example.com?expand=blocks"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBuildRequest(b *testing.B) {
	op, _ := Lookup(SystemOkta, "list_users")
	payload := json.RawMessage(`{"filter": "status eq \"ACTIVE\"", "limit": 25, "search": "profile.department eq \"Engineering\""}`)
	for b.Loop() {
		if _, err := BuildRequest(op, payload); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkHash(b *testing.B) {
	ops := []string{"list_users", "get_user", "create_user", "deactivate_user", "list_groups"}
	for b.Loop() {
		Hash(ops, "on_request")
	}
}
