package oktatest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	clockSkew     = time.Minute
	maxProofAge   = 5 * time.Minute
)

var b64 = base64.RawURLEncoding

func (s *Server) tokenURL() string { return s.origin + "/oauth2/v1/token" }

// handleToken is POST /oauth2/v1/token on the org authorization server (okta-api.md §3).
func (s *Server) handleToken(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.tokenRequests++
	fail := s.tokenFailures > 0
	if fail {
		s.tokenFailures--
	}
	s.mu.Unlock()
	if d := s.opts.TokenDelay; d > 0 {
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	if fail {
		s.oktaError(w, r, http.StatusServiceUnavailable, "E0000009", "Internal Server Error")
		return
	}
	if r.Method != http.MethodPost {
		s.oktaError(w, r, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
		return
	}
	// SDK v5.0.2 sends every parameter in the query string with an empty body; RFC 6749
	// clients send a form body. Accept both (okta-api.md §6).
	if err := r.ParseForm(); err != nil {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_request", "The request body is malformed.")
		return
	}
	p := r.Form
	if p.Get("grant_type") != "client_credentials" {
		s.oauthError(w, r, http.StatusBadRequest, "unsupported_grant_type", "The authorization grant type is not supported by the authorization server.")
		return
	}
	client, desc := s.authenticateClient(r, p)
	if client == nil {
		s.oauthError(w, r, http.StatusUnauthorized, "invalid_client", desc)
		return
	}
	requested := strings.Fields(p.Get("scope"))
	if len(requested) == 0 {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_scope", "No scopes were requested.")
		return
	}
	var granted []string
	for _, sc := range requested {
		if slices.Contains(client.GrantedScopes, sc) && !slices.Contains(granted, sc) {
			granted = append(granted, sc)
		}
	}
	if client.RejectUngrantedScopes && len(granted) < len(requested) {
		s.oauthError(w, r, http.StatusBadRequest, "invalid_scope", "The requested scope is invalid, unknown, malformed, or exceeds the scope granted by the resource owner.")
		return
	}

	jkt := ""
	proofs := r.Header.Values("DPoP")
	switch {
	case len(proofs) > 1:
		s.oauthError(w, r, http.StatusBadRequest, "invalid_dpop_proof", "Multiple DPoP proof JWT headers were provided.")
		return
	case len(proofs) == 0 && client.RequireDPoP:
		s.oauthError(w, r, http.StatusBadRequest, "invalid_dpop_proof", "The DPoP proof JWT header is missing.")
		return
	case len(proofs) == 1:
		c, thumb, desc := s.verifyProof(proofs[0], http.MethodPost, s.tokenURL(), "")
		if desc != "" {
			s.oauthError(w, r, http.StatusBadRequest, "invalid_dpop_proof", desc)
			return
		}
		s.mu.Lock()
		nonce := s.nonce
		s.mu.Unlock()
		if subtle.ConstantTimeCompare([]byte(c.Nonce), []byte(nonce)) != 1 {
			w.Header().Set("DPoP-Nonce", nonce)
			s.oauthError(w, r, http.StatusBadRequest, "use_dpop_nonce", "Authorization server requires nonce in DPoP proof.")
			return
		}
		jkt = thumb
	}

	access := "tok_" + randomHex(24)
	now := s.opts.Now()
	s.mu.Lock()
	s.tokens[access] = &issuedToken{client: client.ID, scopes: granted, expires: now.Add(time.Duration(s.opts.ExpiresIn) * time.Second), jkt: jkt}
	s.mu.Unlock()
	typ := "Bearer"
	if jkt != "" {
		typ = "DPoP"
	}
	w.Header().Set("Cache-Control", "no-store")
	s.writeJSON(w, r, http.StatusOK, map[string]any{
		"token_type": typ, "expires_in": s.opts.ExpiresIn, "access_token": access, "scope": strings.Join(granted, " "),
	})
}

func (s *Server) oauthError(w http.ResponseWriter, r *http.Request, status int, code, desc string) {
	s.writeJSON(w, r, status, map[string]string{"error": code, "error_description": desc})
}

// authenticateClient checks client_secret_basic or private_key_jwt. It returns the
// client, or nil and Okta's invalid_client description.
func (s *Server) authenticateClient(r *http.Request, p url.Values) (*Client, string) {
	if id, sec, ok := r.BasicAuth(); ok {
		// RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
		if v, err := url.QueryUnescape(id); err == nil {
			id = v
		}
		if v, err := url.QueryUnescape(sec); err == nil {
			sec = v
		}
		s.mu.Lock()
		c := s.clients[id]
		s.mu.Unlock()
		switch {
		case c == nil:
			return nil, "Invalid value for 'client_id' parameter."
		case c.Secret == "":
			return nil, "Client Credentials requests to the Org Authorization Server must use the private_key_jwt token_endpoint_auth_method."
		case subtle.ConstantTimeCompare([]byte(c.Secret), []byte(sec)) != 1:
			return nil, "The client secret supplied for a confidential client is invalid."
		}
		return c, ""
	}
	if p.Get("client_assertion_type") != assertionType || p.Get("client_assertion") == "" {
		return nil, "No client credentials found."
	}
	return s.verifyAssertion(p.Get("client_assertion"), p.Get("client_id"))
}

type jwtClaims struct {
	Iss   string          `json:"iss"`
	Sub   string          `json:"sub"`
	Aud   json.RawMessage `json:"aud"`
	Exp   *float64        `json:"exp"`
	Iat   *float64        `json:"iat"`
	Jti   string          `json:"jti"`
	Htm   string          `json:"htm"`
	Htu   string          `json:"htu"`
	Nonce string          `json:"nonce"`
	Ath   string          `json:"ath"`
}

type jwtHeader struct {
	Alg string          `json:"alg"`
	Typ string          `json:"typ"`
	Kid string          `json:"kid"`
	JWK json.RawMessage `json:"jwk"`
}

type jws struct {
	header jwtHeader
	claims jwtClaims
	input  []byte
	sig    []byte
}

func parseJWS(s string) (*jws, error) {
	parts := strings.Split(s, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a compact JWS")
	}
	hb, err1 := b64.DecodeString(parts[0])
	cb, err2 := b64.DecodeString(parts[1])
	sig, err3 := b64.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3); err != nil {
		return nil, err
	}
	j := &jws{input: []byte(parts[0] + "." + parts[1]), sig: sig}
	if err := json.Unmarshal(hb, &j.header); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cb, &j.claims); err != nil {
		return nil, err
	}
	return j, nil
}

// verify checks the signature with pub for alg RS256 or ES256 (raw r||s).
func (j *jws) verify(pub crypto.PublicKey) bool {
	digest := sha256.Sum256(j.input)
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return j.header.Alg == "RS256" && rsa.VerifyPKCS1v15(k, crypto.SHA256, digest[:], j.sig) == nil
	case *ecdsa.PublicKey:
		if j.header.Alg != "ES256" || len(j.sig) != 64 {
			return false
		}
		r, s := new(big.Int).SetBytes(j.sig[:32]), new(big.Int).SetBytes(j.sig[32:])
		return ecdsa.Verify(k, digest[:], r, s)
	}
	return false
}

func audContains(raw json.RawMessage, want string) bool {
	var one string
	if json.Unmarshal(raw, &one) == nil {
		return one == want
	}
	var many []string
	return json.Unmarshal(raw, &many) == nil && slices.Contains(many, want)
}

func unix(f *float64) time.Time { return time.Unix(int64(*f), 0) }

// verifyAssertion checks a private_key_jwt client assertion (service-app guide §"Create
// and sign the JWT"; descriptions from ERR-JSON). jti is optional (SDK v5.0.2 sends none)
// but a reused one is refused.
func (s *Server) verifyAssertion(assertion, clientIDParam string) (*Client, string) {
	j, err := parseJWS(assertion)
	if err != nil {
		return nil, "The client_assertion token is malformed."
	}
	s.mu.Lock()
	c := s.clients[j.claims.Iss]
	s.mu.Unlock()
	if c == nil || (clientIDParam != "" && clientIDParam != c.ID) {
		return nil, "Invalid value for 'client_id' parameter."
	}
	if j.claims.Sub != c.ID {
		return nil, "The client_assertion token's sub claim must be the client_id."
	}
	if !audContains(j.claims.Aud, s.tokenURL()) {
		return nil, "The audience claim for client_assertion must be the endpoint invoked for the request."
	}
	now := s.opts.Now()
	switch {
	case j.claims.Exp == nil || !unix(j.claims.Exp).After(now.Add(-clockSkew)):
		return nil, "The client_assertion token is expired."
	case unix(j.claims.Exp).After(now.Add(time.Hour + clockSkew)):
		return nil, "The client_assertion token has an expiration too far into the future."
	}
	var keys []crypto.PublicKey
	if k, ok := c.Keys[j.header.Kid]; ok {
		keys = append(keys, k)
	} else if j.header.Kid != "" {
		return nil, "The client_assertion JWT kid is invalid."
	} else {
		for _, k := range c.Keys {
			keys = append(keys, k)
		}
	}
	if !slices.ContainsFunc(keys, j.verify) {
		return nil, "The client_assertion signature is invalid."
	}
	if j.claims.Jti != "" {
		s.mu.Lock()
		seen := s.seenJTI["a:"+j.claims.Jti]
		s.seenJTI["a:"+j.claims.Jti] = true
		s.mu.Unlock()
		if seen {
			return nil, "The client_assertion token has already been used."
		}
	}
	return c, ""
}

// verifyProof checks a DPoP proof JWT (RFC 9449 §4.3; Okta's invalid_dpop_proof
// sub-cases, okta-api.md §3) for method and htu, and ath when accessToken is set. It
// returns the claims, the RFC 7638 thumbprint of the proof key, and "" or the error
// description.
func (s *Server) verifyProof(proof, method, htu, accessToken string) (jwtClaims, string, string) {
	j, err := parseJWS(proof)
	if err != nil {
		return jwtClaims{}, "", "The DPoP proof JWT cannot be parsed."
	}
	if j.header.Typ != "dpop+jwt" {
		return jwtClaims{}, "", "The DPoP proof JWT has an invalid 'typ' header."
	}
	if j.header.Alg != "RS256" && j.header.Alg != "ES256" {
		return jwtClaims{}, "", "The DPoP proof JWT has an unsupported 'alg' header."
	}
	pub, thumb, err := parseJWK(j.header.JWK)
	if err != nil {
		return jwtClaims{}, "", "The DPoP proof JWT 'jwk' header is invalid."
	}
	if !j.verify(pub) {
		return jwtClaims{}, "", "The DPoP proof JWT signature is invalid."
	}
	c := j.claims
	if c.Htm != method {
		return c, "", "'htm' claim in the DPoP proof JWT is invalid."
	}
	if c.Htu != htu {
		return c, "", "'htu' claim in the DPoP proof JWT is invalid."
	}
	now := s.opts.Now()
	switch {
	case c.Iat == nil:
		return c, "", "'iat' claim in the DPoP proof JWT is missing."
	case unix(c.Iat).After(now.Add(clockSkew)):
		return c, "", "The DPoP proof JWT is issued in the future."
	case unix(c.Iat).Before(now.Add(-maxProofAge)):
		return c, "", "The DPoP proof JWT is more than 5 minutes old."
	case c.Jti == "":
		return c, "", "'jti' claim in the DPoP proof JWT is missing."
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if c.Ath != b64.EncodeToString(sum[:]) {
			return c, "", "'ath' claim in the DPoP proof JWT is invalid."
		}
	}
	s.mu.Lock()
	seen := s.seenJTI["p:"+c.Jti]
	s.seenJTI["p:"+c.Jti] = true
	s.mu.Unlock()
	if seen {
		return c, "", "The DPoP proof JWT has already been used."
	}
	return c, thumb, ""
}

// parseJWK reads a public RSA or EC P-256 JWK and returns its RFC 7638 SHA-256 thumbprint.
func parseJWK(raw json.RawMessage) (crypto.PublicKey, string, error) {
	var k struct{ Kty, Crv, X, Y, N, E, D string }
	if err := json.Unmarshal(raw, &k); err != nil {
		return nil, "", err
	}
	if k.D != "" {
		return nil, "", errors.New("private key in jwk header")
	}
	var canonical string
	var pub crypto.PublicKey
	switch k.Kty {
	case "EC":
		x, err1 := b64.DecodeString(k.X)
		y, err2 := b64.DecodeString(k.Y)
		if k.Crv != "P-256" || errors.Join(err1, err2) != nil || len(x) != 32 || len(y) != 32 {
			return nil, "", errors.New("bad EC jwk")
		}
		p, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, "", err
		}
		pub = p
		canonical = `{"crv":"P-256","kty":"EC","x":"` + k.X + `","y":"` + k.Y + `"}`
	case "RSA":
		n, err1 := b64.DecodeString(k.N)
		e, err2 := b64.DecodeString(k.E)
		if errors.Join(err1, err2) != nil || len(e) == 0 || len(e) > 4 || len(n) < 256 {
			return nil, "", errors.New("bad RSA jwk")
		}
		pub = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		canonical = `{"e":"` + k.E + `","kty":"RSA","n":"` + k.N + `"}`
	default:
		return nil, "", errors.New("unsupported kty")
	}
	sum := sha256.Sum256([]byte(canonical))
	return pub, b64.EncodeToString(sum[:]), nil
}
