package client_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/quantaseal/gateway/client"
	"github.com/quantaseal/gateway/envelope"
	"github.com/quantaseal/gateway/internal/secret"
)

func Example() {
	// A stand-in for the gateway, sealing a list_users answer for the tenant.
	signer, _ := envelope.GenerateSigningKey(nil)
	responseKey, _ := envelope.GenerateResponseKey(nil)
	hmacKey, _ := envelope.GenerateHMACKey(nil)
	const tenantID = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7"
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, _ := envelope.Seal(envelope.SealInput{
			TenantID: tenantID, Recipient: responseKey.Public(), Signer: signer, HMACKey: hmacKey,
			Status: 200, Next: "00ub0oNGTSWTBKOLGLNR", AuditEventID: "aud_01JDQ90000000000000000000A",
			IssuedAt: time.Now(), Plaintext: []byte(`[{"id":"00u1","status":"ACTIVE"}]`),
		}, nil)
		body, _ := e.MarshalJSON()
		w.Header().Set("Content-Type", envelope.MediaType)
		w.Write(body)
	}))
	defer gw.Close()

	// The tenant's profile; in practice envelope.LoadProfile("profile.json").
	profile := &envelope.Profile{
		TenantID: tenantID, APIKey: secret.New("qs_live_example"),
		HMACKey: hmacKey.Secret(), ResponseKEMSeed: responseKey.Seed(),
		SigningKeys: map[string][]byte{signer.KeyID(): signer.Public().Bytes()},
	}
	c, err := client.New(client.Config{BaseURL: gw.URL, Profile: profile})
	if err != nil {
		fmt.Println(err)
		return
	}
	res, err := c.Outbound(context.Background(), "int_01JDQ8Z4V5G7K9M2N3P4R5S6T9", "list_users",
		map[string]any{"filter": `status eq "ACTIVE"`, "limit": 25})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(res.Status, res.Success, res.Next)
	fmt.Println(string(res.Body))
	// Output:
	// 200 true 00ub0oNGTSWTBKOLGLNR
	// [{"id":"00u1","status":"ACTIVE"}]
}
