package envelope_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/quantaseal/gateway/envelope"
)

// ExampleSeal shows the gateway side: keys parsed once, one Seal per response.
func ExampleSeal() {
	// Long-lived: the gateway's signing key and, per tenant, the parsed response key
	// and HMAC key. (Generated here; the gateway loads them from its vault.)
	signer, _ := envelope.GenerateSigningKey(nil)
	tenantKey, _ := envelope.GenerateResponseKey(nil)
	recipient, _ := envelope.ParseEncapsulationKey(tenantKey.Public().Bytes())
	hmacKey, _ := envelope.GenerateHMACKey(nil)

	e, err := envelope.Seal(envelope.SealInput{
		TenantID:     "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7",
		Recipient:    recipient,
		Signer:       signer,
		HMACKey:      hmacKey,
		Status:       200,
		Next:         "00ub0oNGTSWTBKOLGLNR",
		AuditEventID: "aud_01JDQ90000000000000000000A",
		IssuedAt:     time.Date(2026, 11, 29, 2, 0, 0, 0, time.UTC),
		Plaintext:    []byte(`[{"id":"00u1","status":"ACTIVE"}]`),
	}, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	body, _ := e.MarshalJSON()
	fmt.Println(e.Success, e.Status, e.IssuedAt, len(e.Encrypted.CiphertextKEM), len(e.Signature.PQCSignature), len(body) > 0)
	// Output: true 200 2026-11-29T02:00:00Z 1088 3309 true
}

// ExampleOpen shows the client side: a profile's keys open an envelope; a changed
// envelope is refused with the check that caught it.
func ExampleOpen() {
	signer, _ := envelope.GenerateSigningKey(nil)
	tenantKey, _ := envelope.GenerateResponseKey(nil)
	hmacKey, _ := envelope.GenerateHMACKey(nil)
	const tenantID = "ten_01JDQ8Z4V5G7K9M2N3P4R5S6T7"
	e, _ := envelope.Seal(envelope.SealInput{
		TenantID: tenantID, Recipient: tenantKey.Public(), Signer: signer, HMACKey: hmacKey,
		Status: 403, AuditEventID: "aud_01JDQ90000000000000000000D",
		IssuedAt: time.Now(), Plaintext: []byte(`{"errorCode":"E0000006"}`),
	}, nil)
	data, _ := e.MarshalJSON()

	keys := envelope.OpenKeys{
		TenantID:  tenantID,
		Response:  tenantKey,
		HMACKey:   hmacKey,
		Verifying: map[string]*envelope.VerifyingKey{signer.KeyID(): signer.Public()},
	}
	body, opened, err := envelope.Open(data, keys)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(opened.Success, opened.Status, string(body))

	// Present the 403 as a 200: both signatures fail.
	e.Status, e.Success = 200, true
	tampered, _ := e.MarshalJSON()
	_, _, err = envelope.Open(tampered, keys)
	var oe *envelope.OpenError
	if errors.As(err, &oe) {
		fmt.Println(oe.Check, oe.Field)
	}
	// Output:
	// false 403 {"errorCode":"E0000006"}
	// ml-dsa+hmac signature
}
