package audit_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/quantaseal/gateway/audit"
	"github.com/quantaseal/gateway/internal/secret"
)

func ExampleCanonicalize() {
	b, _ := audit.Canonicalize(map[string]any{"z": 1, "a": "<&>", "n": 4.50})
	fmt.Println(string(b))
	// Output: {"a":"<&>","n":4.5,"z":1}
}

func ExampleVerify() {
	signer, _ := audit.NewSeedSigner(secret.FromBytes(bytes.Repeat([]byte{1}, 32)))
	store := newMemStore()
	l, _ := audit.NewLog(audit.Config{}, store, signer)
	ctx := context.Background()
	ev, _ := l.Append(ctx, audit.Event{TenantID: "ten_demo", Operation: "list_users", Decision: "allow", Status: 200})
	_ = l.Close(ctx) // signs the final checkpoint
	fmt.Println(ev.ChainID, ev.Seq)

	events, checkpoints := store.snapshot()
	keys := map[string][]byte{signer.KeyID(): signer.PublicKey()}
	fmt.Println(audit.Verify(events, checkpoints, keys, audit.VerifyOptions{}))

	events[0].Status = 500
	fmt.Println(strings.Contains(audit.Verify(events, checkpoints, keys, audit.VerifyOptions{}).Error(), "seq 1 (hash)"))
	// Output:
	// ten_demo/w1 1
	// <nil>
	// true
}
