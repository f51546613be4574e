// Package httpapi is the gateway's HTTP API: tenant and API-key administration, the
// vault (seal, rotate, delete, list credential metadata), integrations, audit reads,
// the public signing keys, and the /healthz and /readyz probes. It uses net/http's
// ServeMux with Go 1.22 patterns and no framework.
//
// # Authentication
//
//   - Admin endpoints (/api/v2/tenants…) take "Authorization: Bearer <admin token>",
//     compared in constant time. With no admin token configured they always answer 401:
//     there is no open default.
//   - Tenant endpoints take the tenant's API key as "X-API-Key: qs_live_…" or
//     "Authorization: Bearer qs_live_…". A key bound to one integration is a data-plane
//     key: it is refused (403) on the management endpoints, so that a key handed to one
//     application cannot reconfigure the tenant.
//   - GET /api/v2/signing-keys, /healthz and /readyz are unauthenticated.
//   - Failed attempts (a wrong admin token or API key) are limited per source, the TCP
//     peer address, by [Config.AuthLimiter] (internal/authlimit; by default 10
//     failures, then one more every 6 s). A source over its budget gets 429
//     too_many_requests with Retry-After on every authenticated endpoint, even with a
//     valid credential. Each failure is logged ("authentication failed") with its
//     source and route, never with the presented value.
//
// # Errors
//
// Every error is JSON {"error": code, "message": text, "field": name}; [New]'s routes map
// store and vault sentinels to statuses in one place (errors.go): invalid input 400,
// missing or wrong key 401, bound key 403, unknown or foreign id 404 (another tenant's id
// is indistinguishable from a missing one), conflict 409, body over Config.MaxBodyBytes
// 413, a body that is not application/json 415, too many failed authentication attempts
// 429, and store, vault or KMS unavailable 503.
// A request that fails validation changes nothing.
//
// # Secrets
//
// Secrets enter as JSON strings and are held in secret.Secret from decoding on. The only
// secrets a response ever carries are the once-shown values of tenant and API-key
// creation (api_key, hmac_key, response_kem_seed); every response has
// "Cache-Control: no-store". Logs carry the API key's public id ("key_…"), never a key.
package httpapi
