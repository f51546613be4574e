package oktatest

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Seed data. Ids have Okta's 20-character shape. Six users are listed by default (one
// more is DEPROVISIONED), so limit=2 gives three pages.
const (
	UserAlice = "00u00000000000000001" // alice@example.com, ACTIVE, Engineering
	UserBob   = "00u00000000000000002" // bob@example.com, ACTIVE, Engineering
	UserCarol = "00u00000000000000003" // carol@example.com, STAGED, Sales
	UserDave  = "00u00000000000000004" // dave@example.com, PROVISIONED
	UserErin  = "00u00000000000000005" // erin@example.com, DEPROVISIONED
	UserFrank = "00u00000000000000006" // frank+test@example.com, ACTIVE
	UserSlash = "00u00000000000000007" // dom/svc@example.com: fetchable by id only
	AppSAML   = "0oa00000000000000001" // assigned to alice
	AppOIDC   = "0oa00000000000000002" // assigned to alice and bob
)

const timeFormat = "2006-01-02T15:04:05.000Z"

var seedTime = time.Date(2024, 4, 4, 15, 56, 5, 0, time.UTC)

type dataset struct {
	origin string
	users  []*user
	groups []*group
	apps   []*app
	logs   []*logEvent
	nextID int
}

type user struct {
	ID              string         `json:"id"`
	Status          string         `json:"status"`
	Created         string         `json:"created"`
	Activated       *string        `json:"activated"`
	StatusChanged   *string        `json:"statusChanged"`
	LastLogin       *string        `json:"lastLogin"`
	LastUpdated     string         `json:"lastUpdated"`
	PasswordChanged *string        `json:"passwordChanged"`
	Type            map[string]any `json:"type"`
	Profile         map[string]any `json:"profile"`
	Credentials     map[string]any `json:"credentials"`
	Links           map[string]any `json:"_links"`
}

func (u *user) attr(name string) []string {
	switch name {
	case "id":
		return []string{u.ID}
	case "status":
		return []string{u.Status}
	case "created":
		return []string{u.Created}
	case "lastUpdated":
		return []string{u.LastUpdated}
	}
	if p, ok := strings.CutPrefix(name, "profile."); ok {
		if v, ok := u.Profile[p].(string); ok {
			return []string{v}
		}
	}
	return nil
}

func (u *user) login() string { s, _ := u.Profile["login"].(string); return s }

// matchesPrefix is the q= starts-with match on firstName, lastName or email.
func (u *user) matchesPrefix(prefix string) bool {
	for _, k := range []string{"firstName", "lastName", "email"} {
		if v, ok := u.Profile[k].(string); ok && strings.HasPrefix(strings.ToLower(v), prefix) {
			return true
		}
	}
	return false
}

func (u *user) setStatus(status string, now time.Time) {
	ts := now.UTC().Format(timeFormat)
	u.Status, u.StatusChanged, u.LastUpdated = status, &ts, ts
}

type group struct {
	ID                    string         `json:"id"`
	Created               string         `json:"created"`
	LastUpdated           string         `json:"lastUpdated"`
	LastMembershipUpdated string         `json:"lastMembershipUpdated"`
	ObjectClass           []string       `json:"objectClass"`
	Type                  string         `json:"type"`
	Profile               groupProfile   `json:"profile"`
	Links                 map[string]any `json:"_links"`
}

type groupProfile struct {
	Name        string `json:"name"`
	Description string `json:"description"`
}

func (g *group) attr(name string) []string {
	switch name {
	case "id":
		return []string{g.ID}
	case "type":
		return []string{g.Type}
	case "profile.name":
		return []string{g.Profile.Name}
	case "profile.description":
		return []string{g.Profile.Description}
	}
	return nil
}

type app struct {
	id, name, label, signOnMode, status string
	users                               []string // assigned user ids
	origin                              string
}

func (a *app) attr(name string) []string {
	switch name {
	case "id":
		return []string{a.id}
	case "name":
		return []string{a.name}
	case "status":
		return []string{a.status}
	case "user.id":
		return a.users
	}
	return nil
}

// render returns the app as Okta sends it; signOnMode is always set, or SDK v5.0.2
// silently decodes nothing (okta-api.md §1.6).
func (a *app) render(expandUser string) map[string]any {
	ts := seedTime.Format(timeFormat)
	m := map[string]any{
		"id": a.id, "name": a.name, "label": a.label, "status": a.status, "signOnMode": a.signOnMode,
		"created": ts, "lastUpdated": ts,
		"accessibility": map[string]any{"selfService": false},
		"visibility":    map[string]any{"autoSubmitToolbar": false, "hide": map[string]any{"iOS": false, "web": false}},
		"features":      []string{},
		"settings":      map[string]any{"app": map[string]any{}},
		"_links":        map[string]any{"users": map[string]any{"href": a.origin + "/api/v1/apps/" + a.id + "/users"}},
	}
	if expandUser != "" && slices.Contains(a.users, expandUser) {
		m["_embedded"] = map[string]any{"user": map[string]any{
			"id": expandUser, "scope": "USER", "status": "ACTIVE", "credentials": map[string]any{"userName": expandUser},
		}}
	}
	return m
}

type logEvent struct {
	at     time.Time
	cursor string
	fields map[string]string // filterable attributes
	body   map[string]any
}

func (e *logEvent) attr(name string) []string {
	if v, ok := e.fields[name]; ok {
		return []string{v}
	}
	return nil
}

// MarshalJSON renders the event; version and postalCode are strings, or SDK v5.0.2
// fails to decode (okta-api.md §1.7).
func (e *logEvent) MarshalJSON() ([]byte, error) { return json.Marshal(e.body) }

func seed(origin string) *dataset {
	d := &dataset{origin: origin, nextID: 100}
	for i, u := range []struct{ first, last, login, dept, status string }{
		{"Alice", "Smith", "alice@example.com", "Engineering", "ACTIVE"},
		{"Bob", "Jones", "bob@example.com", "Engineering", "ACTIVE"},
		{"Carol", "White", "carol@example.com", "Sales", "STAGED"},
		{"Dave", "Brown", "dave@example.com", "Sales", "PROVISIONED"},
		{"Erin", "Green", "erin@example.com", "Sales", "DEPROVISIONED"},
		{"Frank", "Black", "frank+test@example.com", "Engineering", "ACTIVE"},
		{"Svc", "Account", "dom/svc@example.com", "IT", "ACTIVE"},
	} {
		usr := d.newUser(fmt.Sprintf("00u%017d", i+1), map[string]any{
			"firstName": u.first, "lastName": u.last, "login": u.login, "email": u.login,
			"department": u.dept, "mobilePhone": nil, "secondEmail": nil,
		}, u.status, true, seedTime.Add(time.Duration(i)*time.Hour))
		d.users = append(d.users, usr)
	}
	for i, g := range []struct{ name, desc, typ string }{
		{"Everyone", "All users in your organization", "BUILT_IN"},
		{"Engineering", "Engineers", "OKTA_GROUP"},
		{"Sales", "Sales team", "OKTA_GROUP"},
		{"SAML app users", "Imported from the SAML app", "APP_GROUP"},
	} {
		id := fmt.Sprintf("00g%017d", i+1)
		ts := seedTime.Format(timeFormat)
		d.groups = append(d.groups, &group{
			ID: id, Created: ts, LastUpdated: ts, LastMembershipUpdated: ts,
			ObjectClass: []string{"okta:user_group"}, Type: g.typ, Profile: groupProfile{Name: g.name, Description: g.desc},
			Links: map[string]any{
				"users": map[string]any{"href": origin + "/api/v1/groups/" + id + "/users"},
				"apps":  map[string]any{"href": origin + "/api/v1/groups/" + id + "/apps"},
			},
		})
	}
	d.apps = []*app{
		{id: AppSAML, name: "acme_saml20app_1", label: "Custom SAML 2.0 App", signOnMode: "SAML_2_0", status: "ACTIVE", users: []string{UserAlice}, origin: origin},
		{id: AppOIDC, name: "oidc_client", label: "Internal Portal", signOnMode: "OPENID_CONNECT", status: "ACTIVE", users: []string{UserAlice, UserBob}, origin: origin},
		{id: "0oa00000000000000003", name: "bookmark", label: "Wiki", signOnMode: "BOOKMARK", status: "INACTIVE", origin: origin},
	}
	logStart := time.Date(2024, 8, 13, 15, 58, 20, 353e6, time.UTC)
	for i, ev := range []struct{ typ, actor, target, result string }{
		{"user.session.start", UserAlice, AppSAML, "SUCCESS"},
		{"user.session.start", UserBob, AppOIDC, "SUCCESS"},
		{"user.authentication.sso", UserAlice, AppOIDC, "SUCCESS"},
		{"user.session.start", UserCarol, AppSAML, "FAILURE"},
		{"user.lifecycle.deactivate", UserAlice, UserErin, "SUCCESS"},
	} {
		at := logStart.Add(time.Duration(i) * time.Minute)
		uuid := fmt.Sprintf("dc9fd3c0-598c-11ef-8478-%012d", i+1)
		d.logs = append(d.logs, &logEvent{
			at:     at,
			cursor: fmt.Sprintf("%d_%d", at.UnixMilli(), i+1),
			fields: map[string]string{"eventType": ev.typ, "actor.id": ev.actor, "target.id": ev.target, "outcome.result": ev.result, "severity": "INFO"},
			body: map[string]any{
				"uuid": uuid, "published": at.Format(timeFormat), "eventType": ev.typ, "version": "0", "severity": "INFO",
				"displayMessage": "User event", "legacyEventType": "core.user_auth.login_success",
				"actor": map[string]any{"id": ev.actor, "type": "User", "alternateId": ev.actor, "displayName": ev.actor},
				"client": map[string]any{"ipAddress": "10.0.0.1", "device": "Computer",
					"userAgent":           map[string]any{"rawUserAgent": "Mozilla/5.0", "os": "Mac OS X", "browser": "CHROME"},
					"geographicalContext": map[string]any{"city": "New York", "state": "New York", "country": "United States", "postalCode": "10013"}},
				"outcome":               map[string]any{"result": ev.result, "reason": nil},
				"authenticationContext": map[string]any{"externalSessionId": "idx" + uuid[:8]},
				"transaction":           map[string]any{"type": "WEB", "id": "tx" + uuid[:8]},
				"debugContext":          map[string]any{"debugData": map[string]any{"requestId": "rq" + uuid[:8]}},
				"target":                []map[string]any{{"id": ev.target, "type": "AppInstance", "alternateId": ev.target, "displayName": ev.target}},
			},
		})
	}
	return d
}

func (d *dataset) newUser(id string, profile map[string]any, status string, password bool, now time.Time) *user {
	ts := now.UTC().Format(timeFormat)
	u := &user{
		ID: id, Status: status, Created: ts, LastUpdated: ts,
		Type:        map[string]any{"id": "oty1162QAr8hJjTaq0g4"},
		Profile:     profile,
		Credentials: map[string]any{"provider": map[string]any{"type": "OKTA", "name": "OKTA"}},
		Links:       map[string]any{"self": map[string]any{"href": d.origin + "/api/v1/users/" + id}},
	}
	if password {
		u.Credentials["password"] = map[string]any{}
		u.PasswordChanged = &ts
	}
	if status == "ACTIVE" {
		u.Activated, u.StatusChanged = &ts, &ts
	}
	return u
}

func (d *dataset) addUser(profile map[string]any, status string, password bool, now time.Time) *user {
	d.nextID++
	u := d.newUser(fmt.Sprintf("00u%017d", d.nextID), profile, status, password, now)
	d.users = append(d.users, u)
	return u
}

func (d *dataset) loginTaken(login string) bool {
	return slices.ContainsFunc(d.users, func(u *user) bool { return strings.EqualFold(u.login(), login) })
}

// findUser resolves an id, a login, or an unambiguous login shortname (the part before
// '@'). Logins containing '/' can only be fetched by id (okta-api.md §1.2).
func (d *dataset) findUser(idOrLogin string) *user {
	for _, u := range d.users {
		if u.ID == idOrLogin {
			return u
		}
	}
	if strings.Contains(idOrLogin, "/") {
		return nil
	}
	var short []*user
	for _, u := range d.users {
		if strings.EqualFold(u.login(), idOrLogin) {
			return u
		}
		if name, _, ok := strings.Cut(u.login(), "@"); ok && strings.EqualFold(name, idOrLogin) {
			short = append(short, u)
		}
	}
	if len(short) == 1 {
		return short[0]
	}
	return nil
}

// parseExpr parses the subset of Okta's filter/search language the double supports:
// clauses `attr eq|sw|co "value"` joined by `and`. ok is false for anything else
// (Okta answers 400 E0000031).
func parseExpr(expr string) (pred func(attr func(string) []string) bool, ok bool) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return func(func(string) []string) bool { return true }, true
	}
	type clause struct{ attr, op, val string }
	var clauses []clause
	rest := expr
	for {
		fields := strings.SplitN(strings.TrimSpace(rest), " ", 3)
		if len(fields) < 3 {
			return nil, false
		}
		c := clause{attr: fields[0], op: strings.ToLower(fields[1])}
		if c.op != "eq" && c.op != "sw" && c.op != "co" {
			return nil, false
		}
		v := fields[2]
		if !strings.HasPrefix(v, `"`) {
			return nil, false
		}
		end := strings.IndexByte(v[1:], '"')
		if end < 0 {
			return nil, false
		}
		c.val = v[1 : end+1]
		clauses = append(clauses, c)
		rest = strings.TrimSpace(v[end+2:])
		if rest == "" {
			break
		}
		next, ok := strings.CutPrefix(rest, "and ")
		if !ok {
			return nil, false
		}
		rest = next
	}
	return func(attr func(string) []string) bool {
		for _, c := range clauses {
			if !slices.ContainsFunc(attr(c.attr), func(v string) bool {
				switch c.op {
				case "eq":
					return v == c.val
				case "sw":
					return strings.HasPrefix(v, c.val)
				default:
					return strings.Contains(strings.ToLower(v), strings.ToLower(c.val))
				}
			}) {
				return false
			}
		}
		return true
	}, true
}

func parseTime(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	return time.Parse(time.RFC3339Nano, s)
}
