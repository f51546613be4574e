package policy

import "slices"

// SystemOkta is the system_type of the Okta Management API v1 catalogue.
const SystemOkta = "okta"

// Kind is the JSON type a payload field must have.
type Kind int

// Payload field kinds.
const (
	KindString      Kind = iota + 1 // JSON string
	KindInt                         // JSON integer within [Param.Min, Param.Max]
	KindBool                        // JSON true/false
	KindObject                      // JSON object, forwarded as given
	KindStringArray                 // JSON array of strings, at most Param.Max items
	KindTime                        // JSON string holding an RFC 3339 time
)

// Location says where a validated payload field goes in the upstream request.
type Location int

// Field locations.
const (
	InQuery      Location = iota + 1 // a query parameter of the same name
	InPath                           // replaces {Name} in the path template, url.PathEscape'd
	InBody                           // a member of the JSON request body
	InUserFilter                     // becomes filter=user.id eq "<value>" (list_applications)
)

// Param describes one payload field of an operation.
type Param struct {
	Name     string
	Kind     Kind
	In       Location
	Required bool
	// Min and Max bound KindInt values and (Max only) KindStringArray lengths.
	Min, Max int64
	// Enum, when non-empty, lists the only accepted KindString values.
	Enum []string
}

// Operation is one catalogue entry.
type Operation struct {
	Name          string // catalogue name, e.g. "list_users"
	SystemType    string // "okta"
	Method        string // upstream HTTP method
	PathTemplate  string // e.g. "/api/v1/users/{id}"
	Scope         string // OAuth scope the call needs, e.g. "okta.users.read"
	StateChanging bool   // the call changes state upstream (audit intent + outcome)
	Params        []Param
}

// maxString bounds every string payload field, so a payload cannot make the upstream
// request line arbitrarily long. Okta itself rejects request lines far shorter than a
// few KiB; 4096 leaves room for long search expressions.
const maxString = 4096

// catalogues holds one table per system_type, each sorted by Name (a test checks it).
// It is never mutated; accessors return copies.
var catalogues = map[string][]Operation{
	SystemOkta: {
		{
			SystemType: SystemOkta, Name: "create_user", Method: "POST", PathTemplate: "/api/v1/users",
			Scope: "okta.users.manage", StateChanging: true,
			Params: []Param{
				{Name: "profile", Kind: KindObject, In: InBody, Required: true},
				{Name: "credentials", Kind: KindObject, In: InBody},
				// okta-api.md §1.3: at most 20 groupIds (legacy doc; E0000093 beyond).
				{Name: "groupIds", Kind: KindStringArray, In: InBody, Max: 20},
				{Name: "activate", Kind: KindBool, In: InQuery},
			},
		},
		{
			SystemType: SystemOkta, Name: "deactivate_user", Method: "POST", PathTemplate: "/api/v1/users/{id}/lifecycle/deactivate",
			Scope: "okta.users.manage", StateChanging: true,
			Params: []Param{
				{Name: "id", Kind: KindString, In: InPath, Required: true},
				{Name: "sendEmail", Kind: KindBool, In: InQuery},
			},
		},
		{
			SystemType: SystemOkta, Name: "get_system_log", Method: "GET", PathTemplate: "/api/v1/logs",
			Scope: "okta.logs.read",
			Params: []Param{
				{Name: "since", Kind: KindTime, In: InQuery},
				{Name: "until", Kind: KindTime, In: InQuery},
				{Name: "filter", Kind: KindString, In: InQuery},
				{Name: "q", Kind: KindString, In: InQuery},
				{Name: "limit", Kind: KindInt, In: InQuery, Min: 1, Max: 1000},
				{Name: "sortOrder", Kind: KindString, In: InQuery, Enum: []string{"ASCENDING", "DESCENDING"}},
				{Name: "after", Kind: KindString, In: InQuery},
			},
		},
		{
			SystemType: SystemOkta, Name: "get_user", Method: "GET", PathTemplate: "/api/v1/users/{id}",
			Scope: "okta.users.read",
			Params: []Param{
				{Name: "id", Kind: KindString, In: InPath, Required: true},
			},
		},
		{
			SystemType: SystemOkta, Name: "list_applications", Method: "GET", PathTemplate: "/api/v1/apps",
			Scope: "okta.apps.read",
			Params: []Param{
				{Name: "q", Kind: KindString, In: InQuery},
				{Name: "filter", Kind: KindString, In: InQuery},
				// okta-api.md §1.6: maximum 200.
				{Name: "limit", Kind: KindInt, In: InQuery, Min: 1, Max: 200},
				{Name: "after", Kind: KindString, In: InQuery},
				{Name: "user_id", Kind: KindString, In: InUserFilter},
			},
		},
		{
			SystemType: SystemOkta, Name: "list_groups", Method: "GET", PathTemplate: "/api/v1/groups",
			Scope: "okta.groups.read",
			Params: []Param{
				{Name: "q", Kind: KindString, In: InQuery},
				{Name: "search", Kind: KindString, In: InQuery},
				{Name: "filter", Kind: KindString, In: InQuery},
				// okta-api.md §1.5: SPEC maximum 10000.
				{Name: "limit", Kind: KindInt, In: InQuery, Min: 1, Max: 10000},
				{Name: "after", Kind: KindString, In: InQuery},
			},
		},
		{
			SystemType: SystemOkta, Name: "list_users", Method: "GET", PathTemplate: "/api/v1/users",
			Scope: "okta.users.read",
			Params: []Param{
				{Name: "q", Kind: KindString, In: InQuery},
				{Name: "filter", Kind: KindString, In: InQuery},
				{Name: "search", Kind: KindString, In: InQuery},
				{Name: "limit", Kind: KindInt, In: InQuery, Min: 1, Max: 200},
				{Name: "after", Kind: KindString, In: InQuery},
				{Name: "sortBy", Kind: KindString, In: InQuery},
				{Name: "sortOrder", Kind: KindString, In: InQuery, Enum: []string{"asc", "desc"}},
			},
		},
	},
}

// KnownSystemType reports whether systemType has a catalogue.
func KnownSystemType(systemType string) bool {
	_, ok := catalogues[systemType]
	return ok
}

// Lookup returns the catalogue entry for operation of systemType.
func Lookup(systemType, operation string) (Operation, bool) {
	for _, op := range catalogues[systemType] {
		if op.Name == operation {
			return op.clone(), true
		}
	}
	return Operation{}, false
}

// Operations returns the catalogue of systemType sorted by Name (nil when unknown).
func Operations(systemType string) []Operation {
	ops := catalogues[systemType]
	if ops == nil {
		return nil
	}
	out := make([]Operation, len(ops))
	for i, op := range ops {
		out[i] = op.clone()
	}
	return out
}

// clone copies op deeply enough that callers cannot mutate the catalogue.
func (op Operation) clone() Operation {
	op.Params = slices.Clone(op.Params)
	for i := range op.Params {
		op.Params[i].Enum = slices.Clone(op.Params[i].Enum)
	}
	return op
}

func (op Operation) param(name string) (Param, bool) {
	for _, p := range op.Params {
		if p.Name == name {
			return p, true
		}
	}
	return Param{}, false
}
