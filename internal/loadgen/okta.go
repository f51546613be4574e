package loadgen

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"
)

// Okta response bodies of realistic shape and size, deterministic so runs compare.

type oktaUser struct {
	ID              string          `json:"id"`
	Status          string          `json:"status"`
	Created         string          `json:"created"`
	Activated       *string         `json:"activated"`
	StatusChanged   *string         `json:"statusChanged"`
	LastLogin       string          `json:"lastLogin"`
	LastUpdated     string          `json:"lastUpdated"`
	PasswordChanged string          `json:"passwordChanged"`
	Type            map[string]any  `json:"type"`
	Profile         oktaUserProfile `json:"profile"`
	Credentials     map[string]any  `json:"credentials"`
	Links           map[string]any  `json:"_links"`
}

type oktaUserProfile struct {
	FirstName         string  `json:"firstName"`
	LastName          string  `json:"lastName"`
	DisplayName       string  `json:"displayName"`
	NickName          string  `json:"nickName"`
	Title             string  `json:"title"`
	Login             string  `json:"login"`
	Email             string  `json:"email"`
	SecondEmail       *string `json:"secondEmail"`
	MobilePhone       *string `json:"mobilePhone"`
	PrimaryPhone      string  `json:"primaryPhone"`
	StreetAddress     string  `json:"streetAddress"`
	City              string  `json:"city"`
	State             string  `json:"state"`
	ZipCode           string  `json:"zipCode"`
	CountryCode       string  `json:"countryCode"`
	PreferredLanguage string  `json:"preferredLanguage"`
	Locale            string  `json:"locale"`
	Timezone          string  `json:"timezone"`
	UserType          string  `json:"userType"`
	EmployeeNumber    string  `json:"employeeNumber"`
	CostCenter        string  `json:"costCenter"`
	Organization      string  `json:"organization"`
	Division          string  `json:"division"`
	Department        string  `json:"department"`
	ManagerID         string  `json:"managerId"`
	Manager           string  `json:"manager"`
}

var (
	firstNames  = []string{"Alice", "Bob", "Carmen", "Deepak", "Elena", "Farid", "Grace", "Hiroshi", "Ingrid", "Jamal"}
	lastNames   = []string{"Smith", "Okafor", "Garcia", "Patel", "Novak", "Haddad", "Kim", "Tanaka", "Larsen", "Brown"}
	departments = []string{"Engineering", "Finance", "Sales", "Support", "Legal"}
	cities      = []struct{ city, state, zip string }{
		{"San Francisco", "CA", "94105"}, {"New York", "NY", "10013"}, {"Austin", "TX", "78701"}, {"Seattle", "WA", "98101"},
	}
)

// oktaID is an Okta-style 20-character id: a 3-character prefix and 17 characters.
func oktaID(prefix string, i int) string {
	return fmt.Sprintf("%s%017d", prefix, 4711000+i)
}

// UsersPage is the body of a GET /api/v1/users page of n users from origin
// (https://example.okta.com), in the shape of okta-api.md §1.1 with a full profile:
// about 1.2 KiB per user, so 25 users are about 30 KiB.
func UsersPage(origin string, n int) ([]byte, error) {
	users := make([]oktaUser, n)
	base := time.Date(2024, 4, 4, 15, 56, 5, 0, time.UTC)
	ts := func(d time.Duration) string { return base.Add(d).Format("2006-01-02T15:04:05.000Z") }
	for i := range users {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
		login := fmt.Sprintf("%s.%s%d@example.com", lower(first), lower(last), i)
		c := cities[i%len(cities)]
		id := oktaID("00u", i)
		activated := ts(time.Duration(i) * time.Hour)
		users[i] = oktaUser{
			ID: id, Status: "ACTIVE",
			Created: ts(0), Activated: &activated, StatusChanged: &activated,
			LastLogin:       ts(time.Duration(i)*time.Hour + 30*24*time.Hour),
			LastUpdated:     ts(time.Duration(i)*time.Minute + 31*24*time.Hour),
			PasswordChanged: ts(time.Duration(i)*time.Minute + time.Hour),
			Type:            map[string]any{"id": "oty1162QAr8hJjTaq0g4"},
			Profile: oktaUserProfile{
				FirstName: first, LastName: last, DisplayName: first + " " + last, NickName: first,
				Title: "Senior " + departments[i%len(departments)] + " Specialist",
				Login: login, Email: login, PrimaryPhone: fmt.Sprintf("+1-415-555-%04d", i),
				StreetAddress: fmt.Sprintf("%d Market Street", 100+i),
				City:          c.city, State: c.state, ZipCode: c.zip, CountryCode: "US",
				PreferredLanguage: "en", Locale: "en_US", Timezone: "America/Los_Angeles",
				UserType: "Employee", EmployeeNumber: strconv.Itoa(100000 + i),
				CostCenter: fmt.Sprintf("CC-%04d", 1000+i%50), Organization: "Example Corp",
				Division: departments[(i+1)%len(departments)] + " Operations", Department: departments[i%len(departments)],
				ManagerID: oktaID("00u", i/10), Manager: "Alice Smith",
			},
			Credentials: map[string]any{
				"password": map[string]any{},
				"provider": map[string]any{"type": "OKTA", "name": "OKTA"},
			},
			Links: map[string]any{
				"self":       map[string]any{"href": origin + "/api/v1/users/" + id},
				"deactivate": map[string]any{"href": origin + "/api/v1/users/" + id + "/lifecycle/deactivate", "method": "POST"},
			},
		}
	}
	return marshal("users page", users)
}

type logEvent struct {
	UUID                  string         `json:"uuid"`
	Published             string         `json:"published"`
	EventType             string         `json:"eventType"`
	Version               string         `json:"version"`
	Severity              string         `json:"severity"`
	DisplayMessage        string         `json:"displayMessage"`
	LegacyEventType       string         `json:"legacyEventType"`
	Actor                 map[string]any `json:"actor"`
	Client                map[string]any `json:"client"`
	Outcome               map[string]any `json:"outcome"`
	AuthenticationContext map[string]any `json:"authenticationContext"`
	Transaction           map[string]any `json:"transaction"`
	DebugContext          map[string]any `json:"debugContext"`
	Target                []any          `json:"target"`
}

// SystemLogPage is the body of a GET /api/v1/logs page of n events, in the shape of
// okta-api.md §1.7 (version and postalCode as strings, which the SDK needs).
func SystemLogPage(n int) ([]byte, error) {
	events := make([]logEvent, n)
	base := time.Date(2024, 8, 13, 15, 58, 20, 353e6, time.UTC)
	for i := range events {
		first, last := firstNames[i%len(firstNames)], lastNames[(i/len(firstNames))%len(lastNames)]
		c := cities[i%len(cities)]
		reqID := fmt.Sprintf("ab609228fe84ce59cdcbfa69%08x", i)
		events[i] = logEvent{
			UUID:      fmt.Sprintf("dc9fd3c0-598c-11ef-8478-%012x", i),
			Published: base.Add(time.Duration(i) * 1700 * time.Millisecond).Format("2006-01-02T15:04:05.000Z"),
			EventType: "user.session.start", Version: "0", Severity: "INFO",
			DisplayMessage: "User login to Okta", LegacyEventType: "core.user_auth.login_success",
			Actor: map[string]any{"id": oktaID("00u", i), "type": "User",
				"alternateId": fmt.Sprintf("%s.%s@example.com", lower(first), lower(last)), "displayName": first + " " + last},
			Client: map[string]any{
				"ipAddress": fmt.Sprintf("10.0.%d.%d", i/250, i%250+1), "device": "Computer",
				"userAgent": map[string]any{"rawUserAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/127.0.0.0 Safari/537.36",
					"os": "Mac OS X", "browser": "CHROME"},
				"geographicalContext": map[string]any{"city": c.city, "state": c.state, "country": "United States", "postalCode": c.zip},
			},
			Outcome:               map[string]any{"result": "SUCCESS", "reason": nil},
			AuthenticationContext: map[string]any{"externalSessionId": fmt.Sprintf("idxBager62CSveUkTxvg%05d", i)},
			Transaction:           map[string]any{"type": "WEB", "id": reqID},
			DebugContext:          map[string]any{"debugData": map[string]any{"requestId": reqID}},
			Target: []any{map[string]any{"id": "0oatxlef9sQvvqInq5d6", "type": "AppInstance",
				"alternateId": "Okta Admin Console", "displayName": "Okta Admin Console"}},
		}
	}
	return marshal("system log page", events)
}

// SystemLogPageOfSize is the fullest System Log page that is exactly size bytes: as
// many whole events as fit (at most 1000, the API's largest limit), then spaces before
// the closing bracket, which JSON ignores. It returns the page and its event count. A
// body of exactly a proxy's buffer limit is the largest one the proxy still hands over
// in one piece, so it is the worst case for whoever holds it.
func SystemLogPageOfSize(size int) ([]byte, int, error) {
	const maxEvents = 1000
	fits := func(n int) ([]byte, bool, error) {
		b, err := SystemLogPage(n)
		return b, err == nil && len(b) <= size, err
	}
	// Binary search for the largest n that fits; n = 0 is the empty page "[]".
	lo, hi := 0, maxEvents
	for lo < hi {
		mid := (lo + hi + 1) / 2
		_, ok, err := fits(mid)
		if err != nil {
			return nil, 0, err
		}
		if ok {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	page, ok, err := fits(lo)
	if err != nil {
		return nil, 0, err
	}
	if !ok || lo == 0 {
		return nil, 0, fmt.Errorf("loadgen: no System Log event fits in %d bytes", size)
	}
	padded := make([]byte, 0, size)
	padded = append(padded, page[:len(page)-1]...) // without the closing ']'
	for len(padded) < size-1 {
		padded = append(padded, ' ')
	}
	return append(padded, ']'), lo, nil
}

// OktaResponseHeaders are the headers Okta sends with a list page of bodyLen bytes at
// origin+path (okta-api.md §1: separate link headers, rate-limit headers, request id).
func OktaResponseHeaders(origin, path string, bodyLen int) []Header {
	return []Header{
		{"date", "Tue, 13 Aug 2024 15:58:21 GMT"},
		{"content-type", "application/json"},
		{"content-length", strconv.Itoa(bodyLen)},
		{"x-okta-request-id", "ZrvDvV5bR0kq0a9ZnD0mYwAAA9k"},
		{"x-rate-limit-limit", "600"},
		{"x-rate-limit-remaining", "598"},
		{"x-rate-limit-reset", "1767225660"},
		{"cache-control", "no-cache, no-store"},
		{"link", "<" + origin + path + ">; rel=\"self\""},
		{"link", "<" + origin + path + "&after=" + oktaID("00u", 24) + ">; rel=\"next\""},
	}
}

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

func marshal(what string, v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("loadgen: %s: %w", what, err)
	}
	return b, nil
}
