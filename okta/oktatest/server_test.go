package oktatest_test

import (
	"compress/gzip"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/okta/okta-sdk-golang/v5/okta"

	"github.com/quantaseal/gateway/okta/oktatest"
)

const apiToken = "00test-api-token"

// sdkClient builds an unchanged SDK v5.0.2 client for the double, with the port fix
// and a clean environment (okta-api.md §4).
func sdkClient(t *testing.T, srv *oktatest.Server, extra ...okta.ConfigSetter) *okta.APIClient {
	t.Helper()
	t.Setenv("HOME", t.TempDir())
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "OKTA_") {
			t.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	setters := append([]okta.ConfigSetter{
		okta.WithOrgUrl(srv.URL()), okta.WithCache(false), okta.WithRateLimitMaxRetries(1),
		okta.WithRateLimitMaxBackOff(5), okta.WithRequestTimeout(10),
	}, extra...)
	cfg, err := okta.NewConfiguration(setters...)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host = strings.TrimPrefix(srv.URL(), "http://")
	return okta.NewAPIClient(cfg)
}

func newSSWS(t *testing.T) (*oktatest.Server, *okta.APIClient) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddAPIToken(apiToken)
	return srv, sdkClient(t, srv, okta.WithToken(apiToken))
}

func TestSDKListUsersAcrossPages(t *testing.T) {
	srv, c := newSSWS(t)
	users, resp, err := c.UserAPI.ListUsers(t.Context()).Limit(2).Execute()
	pages := 1
	for err == nil && resp.HasNextPage() {
		var page []okta.User
		resp, err = resp.Next(&page)
		users = append(users, page...)
		pages++
	}
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, u := range users {
		ids = append(ids, u.GetId())
	}
	want := []string{oktatest.UserAlice, oktatest.UserBob, oktatest.UserCarol, oktatest.UserDave, oktatest.UserFrank, oktatest.UserSlash}
	if diff := cmp.Diff(want, ids); diff != "" {
		t.Errorf("ids (-want +got):\n%s", diff)
	}
	if pages != 3 {
		t.Errorf("pages = %d, want 3", pages)
	}
	for _, r := range srv.Requests() {
		if r.Header.Get("Authorization") != "SSWS "+apiToken {
			t.Errorf("%s %s: Authorization %q", r.Method, r.Path, r.Header.Get("Authorization"))
		}
	}
}

func TestSDKGetUser(t *testing.T) {
	srv, c := newSSWS(t)
	tests := []struct {
		name, arg, wantID string
		wantStatus        int
	}{
		{"by id", oktatest.UserAlice, oktatest.UserAlice, 200},
		{"by login", "alice@example.com", oktatest.UserAlice, 200},
		{"by shortname", "bob", oktatest.UserBob, 200},
		{"plus in login", "frank+test@example.com", oktatest.UserFrank, 200},
		{"slash login by id", oktatest.UserSlash, oktatest.UserSlash, 200},
		{"slash login by login", "dom/svc@example.com", "", 404},
		{"missing", "missing@example.com", "", 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, resp, err := c.UserAPI.GetUser(t.Context(), tt.arg).Execute()
			if tt.wantStatus != 200 {
				var ge *okta.GenericOpenAPIError
				if !errors.As(err, &ge) {
					t.Fatalf("err = %v, want GenericOpenAPIError", err)
				}
				if resp == nil || resp.StatusCode != tt.wantStatus {
					t.Fatalf("resp = %v, want status %d", resp, tt.wantStatus)
				}
				m, ok := ge.Model().(okta.Error)
				if !ok || m.GetErrorCode() != "E0000007" {
					t.Errorf("model = %#v, want E0000007", ge.Model())
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.GetId() != tt.wantID {
				t.Errorf("id = %q, want %q", u.GetId(), tt.wantID)
			}
		})
	}
	// The SDK path-escapes: '/' goes out as %2F and must not split the route.
	var sawEscaped bool
	for _, r := range srv.Requests() {
		sawEscaped = sawEscaped || r.Path == "/api/v1/users/dom%2Fsvc@example.com"
	}
	if !sawEscaped {
		t.Error("no request with %2F in the path reached the double")
	}
}

func TestSDKCreateAndDeactivateUser(t *testing.T) {
	srv, c := newSSWS(t)
	login := "isaac.brock@example.com"
	body := okta.CreateUserRequest{
		Profile: okta.UserProfile{
			FirstName: *okta.NewNullableString(okta.PtrString("Isaac")), LastName: *okta.NewNullableString(okta.PtrString("Brock")),
			Email: okta.PtrString(login), Login: okta.PtrString(login),
		},
		Credentials: &okta.UserCredentials{Password: &okta.PasswordCredential{Value: okta.PtrString("tlpWENT2m")}},
	}
	u, resp, err := c.UserAPI.CreateUser(t.Context()).Body(body).Activate(true).Execute()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || u.GetStatus() != "ACTIVE" {
		t.Fatalf("create: status %d, user status %q; want 200 ACTIVE", resp.StatusCode, u.GetStatus())
	}
	// Duplicate login: 400 E0000001 with errorCauses.
	_, resp, err = c.UserAPI.CreateUser(t.Context()).Body(body).Execute()
	var ge *okta.GenericOpenAPIError
	if !errors.As(err, &ge) || resp == nil || resp.StatusCode != 400 {
		t.Fatalf("duplicate: err %v, resp %v; want 400", err, resp)
	}
	m, _ := ge.Model().(okta.Error)
	if m.GetErrorCode() != "E0000001" || len(m.ErrorCauses) != 1 ||
		!strings.Contains(m.ErrorCauses[0].GetErrorSummary(), "already exists") {
		t.Errorf("duplicate model = %+v", m)
	}

	resp, err = c.UserAPI.DeactivateUser(t.Context(), u.GetId()).Execute()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("deactivate: %v %v", resp, err)
	}
	if st, _ := srv.UserStatus(u.GetId()); st != "DEPROVISIONED" {
		t.Errorf("status after deactivate = %q", st)
	}
	resp, err = c.UserAPI.DeactivateUser(t.Context(), "00unothere0000000000").Execute()
	if err == nil || resp == nil || resp.StatusCode != 404 {
		t.Errorf("deactivate missing: %v %v, want 404", resp, err)
	}
	reqs := srv.Requests()
	last := reqs[len(reqs)-2]
	if last.Method != http.MethodPost || last.Path != "/api/v1/users/"+u.GetId()+"/lifecycle/deactivate" {
		t.Errorf("deactivate request = %s %s", last.Method, last.Path)
	}
}

func TestSDKListGroupsAppsLogs(t *testing.T) {
	_, c := newSSWS(t)
	groups, _, err := c.GroupAPI.ListGroups(t.Context()).Execute()
	if err != nil || len(groups) != 4 {
		t.Fatalf("groups: %d, %v", len(groups), err)
	}
	eng, _, err := c.GroupAPI.ListGroups(t.Context()).Search(`type eq "OKTA_GROUP"`).Execute()
	if err != nil || len(eng) != 2 {
		t.Fatalf("OKTA_GROUP groups: %d, %v", len(eng), err)
	}

	apps, _, err := c.ApplicationAPI.ListApplications(t.Context()).Execute()
	if err != nil || len(apps) != 3 {
		t.Fatalf("apps: %d, %v", len(apps), err)
	}
	for i, a := range apps {
		if a.GetActualInstance() == nil {
			t.Errorf("app %d decoded to nil (signOnMode missing?)", i)
		}
	}
	assigned, _, err := c.ApplicationAPI.ListApplications(t.Context()).
		Filter(`user.id eq "` + oktatest.UserBob + `"`).Expand("user/" + oktatest.UserBob).Execute()
	if err != nil || len(assigned) != 1 || assigned[0].OpenIdConnectApplication == nil {
		t.Fatalf("bob's apps: %+v, %v", assigned, err)
	}

	// Polling query: always a next link; the consumer stops on an empty page.
	events, resp, err := c.SystemLogAPI.ListLogEvents(t.Context()).Since(time.Date(2024, 8, 13, 0, 0, 0, 0, time.UTC)).Limit(2).Execute()
	if err != nil {
		t.Fatal(err)
	}
	for err == nil && resp.HasNextPage() {
		var page []okta.LogEvent
		resp, err = resp.Next(&page)
		if len(page) == 0 {
			if !resp.HasNextPage() {
				t.Error("polling query: empty page without next link")
			}
			break
		}
		events = append(events, page...)
	}
	if err != nil || len(events) != 5 {
		t.Fatalf("events: %d, %v", len(events), err)
	}
	if events[0].GetEventType() != "user.session.start" {
		t.Errorf("first event = %q", events[0].GetEventType())
	}
	// Bounded query: no next link on the last page.
	_, resp, err = c.SystemLogAPI.ListLogEvents(t.Context()).Since(time.Date(2024, 8, 13, 0, 0, 0, 0, time.UTC)).
		Until(time.Date(2024, 8, 14, 0, 0, 0, 0, time.UTC)).Limit(10).Execute()
	if err != nil || resp.HasNextPage() {
		t.Errorf("bounded query: next=%v, err=%v", resp.HasNextPage(), err)
	}
}

func TestSDKRateLimit(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{RateLimit: 1})
	srv.AddAPIToken(apiToken)
	c := sdkClient(t, srv, okta.WithToken(apiToken), okta.WithRateLimitMaxRetries(0))
	if _, _, err := c.GroupAPI.ListGroups(t.Context()).Execute(); err != nil {
		t.Fatal(err)
	}
	_, _, err := c.GroupAPI.ListGroups(t.Context()).Execute()
	if err == nil || !strings.Contains(err.Error(), "too many requests") {
		t.Errorf("second call: %v, want too many requests", err)
	}
}

func TestSDKBadToken(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	c := sdkClient(t, srv, okta.WithToken("wrong"))
	_, resp, err := c.UserAPI.ListUsers(t.Context()).Execute()
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("resp %v err %v, want 401", resp, err)
	}
	var ge *okta.GenericOpenAPIError
	if errors.As(err, &ge) && !strings.Contains(string(ge.Body()), "E0000011") {
		t.Errorf("body %s, want E0000011", ge.Body())
	}
}

// TestSDKPrivateKeyDPoP runs the SDK's own PrivateKey mode against the token endpoint
// with DPoP required: proofless → invalid_dpop_proof → use_dpop_nonce → DPoP token, then
// DPoP-bound API calls.
func TestSDKPrivateKeyDPoP(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pemKey := string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddClient(oktatest.Client{
		ID: "0oaservice", Keys: map[string]crypto.PublicKey{"kid1": &key.PublicKey},
		GrantedScopes: []string{oktatest.ScopeUsersRead, oktatest.ScopeGroupsRead}, RequireDPoP: true,
	})
	c := sdkClient(t, srv, okta.WithAuthorizationMode("PrivateKey"), okta.WithClientId("0oaservice"),
		okta.WithScopes([]string{oktatest.ScopeUsersRead, oktatest.ScopeGroupsRead}),
		okta.WithPrivateKey(pemKey), okta.WithPrivateKeyId("kid1"))
	users, _, err := c.UserAPI.ListUsers(t.Context()).Limit(2).Execute()
	if err != nil || len(users) != 2 {
		t.Fatalf("list users: %d %v", len(users), err)
	}
	if _, _, err := c.GroupAPI.ListGroups(t.Context()).Execute(); err != nil {
		t.Fatalf("list groups: %v", err)
	}
	if got := srv.TokenRequests(); got != 3 {
		t.Errorf("token requests = %d, want 3 (okta-sdk-golang#598)", got)
	}
	// Not granted: 403 with the scope in WWW-Authenticate and an empty body.
	_, resp, err := c.ApplicationAPI.ListApplications(t.Context()).Execute()
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("apps: %v %v, want 403", resp, err)
	}
	if h := resp.Header.Get("WWW-Authenticate"); !strings.Contains(h, `error="insufficient_scope"`) || !strings.Contains(h, `scope="okta.apps.read"`) {
		t.Errorf("WWW-Authenticate = %q", h)
	}
	for _, r := range srv.Requests() {
		if strings.HasPrefix(r.Path, "/api/") && (!strings.HasPrefix(r.Header.Get("Authorization"), "DPoP ") || r.Header.Get("DPoP") == "") {
			t.Errorf("%s %s without DPoP token and proof", r.Method, r.Path)
		}
	}
}

func TestHeadersAndGzip(t *testing.T) {
	srv := oktatest.New(t, oktatest.Options{})
	srv.AddAPIToken(apiToken)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL()+"/api/v1/users?limit=2", nil)
	req.Header.Set("Authorization", "SSWS "+apiToken)
	req.Header.Set("Accept-Encoding", "gzip") // set by hand: the transport then does not decompress
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(zr)
	var users []map[string]any
	if err := json.Unmarshal(body, &users); err != nil || len(users) != 2 {
		t.Fatalf("body: %d users, %v", len(users), err)
	}
	for _, h := range []string{"X-Rate-Limit-Limit", "X-Rate-Limit-Remaining", "X-Rate-Limit-Reset", "X-Okta-Request-Id", "Date"} {
		if resp.Header.Get(h) == "" {
			t.Errorf("missing %s", h)
		}
	}
	links := resp.Header.Values("Link")
	if len(links) != 2 || !strings.HasSuffix(links[0], `rel="self"`) || !strings.HasSuffix(links[1], `rel="next"`) {
		t.Errorf("Link headers = %q", links)
	}
}
