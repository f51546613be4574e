package gatewaytest

import (
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestScanner(t *testing.T) {
	secret := []byte("s3cr3t-value-0123456789/+=")
	pem := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n"
	sc, err := NewScanner(map[string][]byte{"s": secret, "pem": []byte(pem)})
	if err != nil {
		t.Fatal(err)
	}
	jsonEsc, _ := json.Marshal(pem)
	tests := []struct {
		name     string
		blob     string
		wantForm string // "" = no hit
	}{
		{"raw", "x=" + string(secret) + ";", "raw"},
		{"hex", "h:" + hex.EncodeToString(secret), "hex"},
		{"HEX", strings.ToUpper(hex.EncodeToString(secret)), "HEX"},
		{"base64 aligned", base64.StdEncoding.EncodeToString(secret), "base64/0"},
		{"base64 after 1 byte", base64.StdEncoding.EncodeToString(append([]byte("a"), secret...)), "base64/1"},
		{"base64 after 2 bytes", base64.StdEncoding.EncodeToString(append([]byte("ab"), secret...)), "base64/2"},
		{"base64url after 1 byte", base64.RawURLEncoding.EncodeToString(append([]byte("{"), secret...)), "base64url/1"},
		{"url-escaped", "q=" + url.QueryEscape(string(secret)), "url"},
		{"json-escaped PEM", string(jsonEsc), "json"},
		{"one PEM line", "... MIIEvQIBADANBgkqhkiG9w0BAQEFAASC ...", "line 2"},
		{"clean", "nothing to see, s3cr3t-value but not the rest", ""},
	}
	for _, tt := range tests {
		hits := sc.Scan(tt.name, []byte(tt.blob))
		if tt.wantForm == "" {
			if len(hits) > 0 {
				t.Errorf("%s: hits %v, want none", tt.name, hits)
			}
			continue
		}
		found := false
		for _, h := range hits {
			found = found || h.Form == tt.wantForm
		}
		if !found {
			t.Errorf("%s: hits %v, want one in form %s", tt.name, hits, tt.wantForm)
		}
	}
	if _, err := NewScanner(map[string][]byte{"short": []byte("abc")}); err == nil {
		t.Error("NewScanner accepted a 3-byte secret")
	}
}

func TestProxyDownUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	p, u := NewURLProxy(t, "http://"+ln.Addr().String()+"/x")
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{}}
	get := func() error {
		resp, err := client.Get(u)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := get(); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	p.Down()
	if err := get(); err == nil {
		t.Fatal("request succeeded with the proxy down")
	}
	p.Up()
	if err := get(); err != nil {
		t.Fatalf("after Up: %v", err)
	}
	if p.Downs() != 1 || p.Accepted() < 2 {
		t.Errorf("Downs = %d, Accepted = %d", p.Downs(), p.Accepted())
	}
}

func TestFront(t *testing.T) {
	f := NewFront(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/oauth2/") {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"access_token":"tok-123","token_type":"Bearer"}`)
			return
		}
		io.WriteString(w, "[]")
	}))
	f.SetFault(ClassAPI, Fault{Status: 429, Header: http.Header{"X-Rate-Limit-Remaining": {"0"}}, Count: 1})
	resp, err := http.Get(f.URL() + "/api/v1/users%2Fx?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("X-Rate-Limit-Remaining") != "0" {
		t.Errorf("faulted answer: %d %v", resp.StatusCode, resp.Header)
	}
	for range 2 {
		resp, err = http.Post(f.URL()+"/oauth2/v1/token", "application/x-www-form-urlencoded", strings.NewReader("grant_type=client_credentials"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	reqs := f.Requests()
	if len(reqs) != 3 || reqs[0].Path != "/api/v1/users%2Fx" || !reqs[0].Faulted || reqs[1].Faulted || reqs[1].Class != ClassToken {
		t.Errorf("requests: %+v", reqs)
	}
	if f.Count(ClassToken) != 2 || f.Count(ClassAPI) != 1 {
		t.Errorf("counts: token %d api %d", f.Count(ClassToken), f.Count(ClassAPI))
	}
	if got := f.AccessTokens(); len(got) != 2 || got[0] != "tok-123" {
		t.Errorf("access tokens %v", got)
	}
}
