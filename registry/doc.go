// Package registry is the gateway's record of tenants, their API keys and their
// integrations, and the storage contract that the vault's sealed credentials live behind.
//
// It is pure: types, validation, API-key handling and the [Store] contract. Two adapters
// implement the contract — registry/pgstore (PostgreSQL, pgx/v5) and registry/sqlitestore
// (the embedded store) — and both pass the one suite in registry/registrytest.
//
// # Tenant scoping
//
// Every Store method that reads or changes a tenant's rows takes the tenant id and uses it
// in the WHERE clause (or the primary key) of every statement: tenant A can never read,
// update or delete tenant B's rows, even when it names them by id. The only lookup that
// is not tenant-scoped is [Store.LookupAPIKey], which is how a tenant is found in the first
// place.
//
// # API keys
//
// A key is "qs_live_" followed by the unpadded base64url encoding of 32 random bytes
// ([NewAPIKey]). The store keeps only SHA-256 of the whole key string. A plain,
// unsalted hash is enough here because the key carries 256 bits of entropy: there is no
// dictionary to precompute and a preimage search is infeasible, so a slow or peppered
// hash would add nothing. Lookup is by that hash (a unique index), followed by a
// constant-time comparison ([Authenticator.Authenticate]). The key's public id ("key_…")
// is safe to log and is what audit events record as the caller.
//
// # Errors
//
// Stores return errors wrapping [ErrNotFound], [ErrConflict] or [ErrUnavailable] (the
// database is unreachable, the pool is closed, or a statement timed out; the HTTP API
// answers 503). Errors from the vault.Store methods also wrap the matching vault
// sentinel, so the vault can branch on its own errors.
package registry
