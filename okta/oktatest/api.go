package oktatest

import (
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// Scopes of the catalogue operations (okta-api.md §3 "Scopes per operation").
const (
	ScopeUsersRead    = "okta.users.read"
	ScopeUsersManage  = "okta.users.manage"
	ScopeGroupsRead   = "okta.groups.read"
	ScopeAppsRead     = "okta.apps.read"
	ScopeLogsRead     = "okta.logs.read"
	dpopAlgs          = `algs="RS256 RS384 RS512 ES256 ES384 ES512"`
	insufficientScope = "The access token provided does not contain the required scopes."
)

// route is a matched API endpoint: the scope it needs and its handler.
type route struct {
	scope  string
	handle func(w http.ResponseWriter, r *http.Request)
}

// match routes on the ESCAPED path: "%2F" inside a segment is data, not a separator
// (okta-api.md §1.2). It returns the route, or nil and whether the path exists at all
// (for 405 versus 404).
func (s *Server) match(method, escapedPath string) (*route, bool) {
	segs := strings.Split(strings.TrimPrefix(escapedPath, "/"), "/")
	if len(segs) < 3 || segs[0] != "api" || segs[1] != "v1" {
		return nil, false
	}
	segs = segs[2:]
	arg := ""
	if len(segs) > 1 {
		v, err := url.PathUnescape(segs[1])
		if err != nil || v == "" {
			return nil, false
		}
		arg = v
	}
	type key struct {
		method string
		shape  string
	}
	shape := segs[0]
	switch {
	case len(segs) == 2:
		shape += "/{id}"
	case len(segs) == 4:
		shape += "/{id}/" + segs[2] + "/" + segs[3]
	case len(segs) != 1:
		return nil, false
	}
	routes := map[key]*route{
		{http.MethodGet, "users"}:                            {ScopeUsersRead, s.listUsers},
		{http.MethodPost, "users"}:                           {ScopeUsersManage, s.createUser},
		{http.MethodGet, "users/{id}"}:                       {ScopeUsersRead, func(w http.ResponseWriter, r *http.Request) { s.getUser(w, r, arg) }},
		{http.MethodPost, "users/{id}/lifecycle/deactivate"}: {ScopeUsersManage, func(w http.ResponseWriter, r *http.Request) { s.deactivateUser(w, r, arg) }},
		{http.MethodGet, "groups"}:                           {ScopeGroupsRead, s.listGroups},
		{http.MethodGet, "apps"}:                             {ScopeAppsRead, s.listApps},
		{http.MethodGet, "logs"}:                             {ScopeLogsRead, s.listLogs},
	}
	if rt, ok := routes[key{method, shape}]; ok {
		return rt, true
	}
	for k := range routes {
		if k.shape == shape {
			return nil, true // path exists, method does not
		}
	}
	return nil, false
}

func (s *Server) handleAPI(w http.ResponseWriter, r *http.Request, ep string) {
	rt, known := s.match(r.Method, ep)
	switch {
	case rt == nil && known:
		s.oktaError(w, r, http.StatusMethodNotAllowed, "E0000022", "The endpoint does not support the provided HTTP method")
		return
	case rt == nil:
		s.oktaError(w, r, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+ep+" (ApiEndpoint)")
		return
	}
	if !s.authorize(w, r, ep, rt.scope) {
		return
	}
	rt.handle(w, r)
}

// authorize checks the Authorization header (SSWS API token, Bearer or DPoP access
// token), the DPoP proof for DPoP tokens, and the scope. It writes the error and
// returns false when the call may not proceed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, ep, scope string) bool {
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	invalidToken := func(challenge, desc string) bool {
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`%s error="invalid_token", error_description=%q`, challenge, desc))
		}
		s.oktaError(w, r, http.StatusUnauthorized, "E0000011", "Invalid token provided")
		return false
	}
	switch strings.ToLower(scheme) {
	case "ssws":
		s.mu.Lock()
		ok := false
		for t := range s.apiTokens {
			if subtle.ConstantTimeCompare([]byte(t), []byte(cred)) == 1 {
				ok = true
			}
		}
		s.mu.Unlock()
		if !ok {
			return invalidToken("", "")
		}
		return true // API tokens act with the creating admin's permissions
	case "bearer", "dpop":
	default:
		return invalidToken("", "")
	}
	dpop := strings.EqualFold(scheme, "dpop")
	challenge := "Bearer" // RFC 6750 §3 challenge, or Okta's DPoP form (okta-api.md §2)
	if dpop {
		challenge = "DPoP " + dpopAlgs + ","
	}
	s.mu.Lock()
	tok := s.tokens[cred]
	s.mu.Unlock()
	if tok == nil || !s.opts.Now().Before(tok.expires) {
		return invalidToken(challenge, "The access token is invalid.")
	}
	switch {
	case !dpop && tok.jkt != "":
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP %s, error="invalid_request", error_description=%q`, dpopAlgs,
			"The resource request must use the DPoP authentication scheme when using a DPoP bound token"))
		s.writeRaw(w, r, http.StatusBadRequest, nil)
		return false
	case dpop && tok.jkt == "":
		return invalidToken(challenge, "The presented access_token is not DPoP bound")
	case dpop:
		proofs := r.Header.Values("DPoP")
		desc := ""
		if len(proofs) != 1 {
			desc = "The resource request requires a DPoP proof"
		} else {
			var thumb string
			_, thumb, desc = s.verifyProof(proofs[0], r.Method, s.origin+ep, cred)
			if desc == "" && thumb != tok.jkt {
				desc = "The DPoP proof key does not match the access token binding (invalid_access_token_dpop_binding)."
			}
		}
		if desc != "" {
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`DPoP %s, error="invalid_dpop_proof", error_description=%q, resource=%q`, dpopAlgs, desc, ep))
			s.writeRaw(w, r, http.StatusBadRequest, nil)
			return false
		}
	}
	if !scopeCovers(tok.scopes, scope) {
		w.Header().Set("WWW-Authenticate", fmt.Sprintf(`%s authorization_uri=%q, realm=%q, scope=%q, error="insufficient_scope", error_description=%q, resource=%q`,
			challenge, s.origin+"/oauth2/v1/authorize", s.origin, scope, insufficientScope, ep))
		// The body is empty (okta/okta-sdk-golang#145).
		s.writeRaw(w, r, http.StatusForbidden, nil)
		return false
	}
	return true
}

// scopeCovers: a manage scope covers its read scope (okta-api.md §3).
func scopeCovers(granted []string, need string) bool {
	if slices.Contains(granted, need) {
		return true
	}
	base, ok := strings.CutSuffix(need, ".read")
	return ok && slices.Contains(granted, base+".manage")
}

// page writes items[start:start+limit] with Okta's self and next Link headers, one
// header per rel (okta-api.md §1).
func page[T any](s *Server, w http.ResponseWriter, r *http.Request, items []T, id func(T) string, defLimit, maxLimit int, alwaysNext bool) {
	q := r.URL.Query()
	limit := defLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.oktaError(w, r, http.StatusBadRequest, "E0000001", "Api validation failed: limit", "limit: must be a non-negative integer")
			return
		}
		limit = min(n, maxLimit)
	}
	start := 0
	if after := q.Get("after"); after != "" {
		start = len(items)
		for i, it := range items {
			if id(it) == after {
				start = i + 1
				break
			}
		}
	}
	end := min(start+limit, len(items))
	out := items[start:end]
	base := s.origin + r.URL.EscapedPath()
	self := base
	if r.URL.RawQuery != "" {
		self += "?" + r.URL.RawQuery
	}
	w.Header().Add("Link", "<"+self+`>; rel="self"`)
	if end < len(items) || alwaysNext {
		next := r.URL.Query()
		if len(out) > 0 {
			next.Set("after", id(out[len(out)-1]))
		}
		next.Set("limit", strconv.Itoa(limit))
		w.Header().Add("Link", "<"+base+"?"+next.Encode()+`>; rel="next"`)
	}
	rendered := make([]json.RawMessage, 0, len(out))
	for _, it := range out {
		b, _ := json.Marshal(it)
		rendered = append(rendered, b)
	}
	s.writeJSON(w, r, http.StatusOK, rendered)
}

// listQuery reads the search (else filter) expression and the q prefix of a list
// call; on a bad expression it answers Okta's 400 E0000031 and reports false.
func (s *Server) listQuery(w http.ResponseWriter, r *http.Request) (expr string, pred func(attr func(string) []string) bool, prefix string, ok bool) {
	q := r.URL.Query()
	expr = q.Get("search")
	if expr == "" {
		expr = q.Get("filter")
	}
	if pred, ok = parseExpr(expr); !ok {
		s.oktaError(w, r, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
		return "", nil, "", false
	}
	return expr, pred, strings.ToLower(q.Get("q")), true
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	expr, pred, prefix, ok := s.listQuery(w, r)
	if !ok {
		return
	}
	s.mu.Lock()
	var users []*user
	for _, u := range s.data.users {
		switch {
		case expr == "" && u.Status == "DEPROVISIONED":
		case prefix != "" && !u.matchesPrefix(prefix):
		case !pred(u.attr):
		default:
			c := *u
			users = append(users, &c)
		}
	}
	s.mu.Unlock()
	defLimit := 200
	if prefix != "" {
		defLimit = 10
	}
	page(s, w, r, users, func(u *user) string { return u.ID }, defLimit, 200, false)
}

func (s *Server) getUser(w http.ResponseWriter, r *http.Request, idOrLogin string) {
	s.mu.Lock()
	u := s.data.findUser(idOrLogin)
	var c user
	if u != nil {
		c = *u
	}
	s.mu.Unlock()
	if u == nil {
		s.oktaError(w, r, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+idOrLogin+" (User)")
		return
	}
	s.writeJSON(w, r, http.StatusOK, &c)
}

type createUserRequest struct {
	Profile     map[string]any `json:"profile"`
	Credentials *struct {
		Password *struct {
			Value string `json:"value"`
		} `json:"password"`
	} `json:"credentials"`
	GroupIDs []string `json:"groupIds"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	var req createUserRequest
	if err := json.Unmarshal(body, &req); err != nil {
		s.oktaError(w, r, http.StatusBadRequest, "E0000003", "The request body was not well-formed.")
		return
	}
	login, _ := req.Profile["login"].(string)
	if req.Profile == nil || login == "" {
		s.oktaError(w, r, http.StatusBadRequest, "E0000001", "Api validation failed: login", "login: The field cannot be left blank")
		return
	}
	activate := r.URL.Query().Get("activate") != "false"
	hasPassword := req.Credentials != nil && req.Credentials.Password != nil && req.Credentials.Password.Value != ""
	s.mu.Lock()
	if s.data.loginTaken(login) {
		s.mu.Unlock()
		s.oktaError(w, r, http.StatusBadRequest, "E0000001", "Api validation failed: login",
			"login: An object with this field already exists in the current organization")
		return
	}
	status := "STAGED"
	switch {
	case activate && hasPassword:
		status = "ACTIVE"
	case activate:
		status = "PROVISIONED"
	}
	u := s.data.addUser(req.Profile, status, hasPassword, s.opts.Now())
	c := *u
	s.mu.Unlock()
	s.writeJSON(w, r, http.StatusOK, &c) // 200, not 201 (okta-api.md §1.3)
}

func (s *Server) deactivateUser(w http.ResponseWriter, r *http.Request, id string) {
	s.mu.Lock()
	u := s.data.findUser(id)
	switch {
	case u == nil:
		s.mu.Unlock()
		s.oktaError(w, r, http.StatusNotFound, "E0000007", "Not found: Resource not found: "+id+" (User)")
		return
	case u.Status == "DEPROVISIONED":
		s.mu.Unlock()
		s.oktaError(w, r, http.StatusBadRequest, "E0000001", "Api validation failed: deactivate", "deactivate: The user is already deprovisioned")
		return
	}
	u.setStatus("DEPROVISIONED", s.opts.Now())
	s.mu.Unlock()
	// 200 {} with or without Prefer: respond-async (okta-api.md §1.4).
	s.writeRaw(w, r, http.StatusOK, []byte("{}"))
}

func (s *Server) listGroups(w http.ResponseWriter, r *http.Request) {
	_, pred, prefix, ok := s.listQuery(w, r)
	if !ok {
		return
	}
	var out []*group
	for _, g := range s.data.groups {
		if (prefix == "" || strings.HasPrefix(strings.ToLower(g.Profile.Name), prefix)) && pred(g.attr) {
			out = append(out, g)
		}
	}
	page(s, w, r, out, func(g *group) string { return g.ID }, 10000, 10000, false)
}

func (s *Server) listApps(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	pred, ok := parseExpr(q.Get("filter"))
	if !ok {
		s.oktaError(w, r, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
		return
	}
	prefix := strings.ToLower(q.Get("q"))
	expandUser, _ := strings.CutPrefix(q.Get("expand"), "user/")
	var out []map[string]any
	for _, a := range s.data.apps {
		if prefix != "" && !strings.HasPrefix(strings.ToLower(a.name), prefix) && !strings.HasPrefix(strings.ToLower(a.label), prefix) {
			continue
		}
		if !pred(a.attr) {
			continue
		}
		out = append(out, a.render(expandUser))
	}
	page(s, w, r, out, func(m map[string]any) string { return m["id"].(string) }, 20, 200, false)
}

func (s *Server) listLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	since, err1 := parseTime(q.Get("since"))
	until, err2 := parseTime(q.Get("until"))
	if err1 != nil || err2 != nil {
		s.oktaError(w, r, http.StatusBadRequest, "E0000001", "Api validation failed: since/until",
			"Invalid date. Dates must be of the form yyyy-MM-dd'T'HH:mm:ss.SSSZZ, e.g. 2016-01-01T00:00:00.000Z.")
		return
	}
	pred, ok := parseExpr(q.Get("filter"))
	if !ok {
		s.oktaError(w, r, http.StatusBadRequest, "E0000031", "Invalid search criteria.")
		return
	}
	order := q.Get("sortOrder")
	if order != "" && order != "ASCENDING" && order != "DESCENDING" {
		s.oktaError(w, r, http.StatusBadRequest, "E0000053", "Invalid value for sortOrder")
		return
	}
	var out []*logEvent
	for _, e := range s.data.logs {
		if (!since.IsZero() && e.at.Before(since)) || (!until.IsZero() && !e.at.Before(until)) || !pred(e.attr) {
			continue
		}
		out = append(out, e)
	}
	if order == "DESCENDING" {
		slices.Reverse(out)
	}
	// A polling query (no until, ascending) always has a next link (okta-api.md §1.7).
	polling := q.Get("until") == "" && order != "DESCENDING"
	page(s, w, r, out, func(e *logEvent) string { return e.cursor }, 100, 1000, polling)
}
