// Package audit is the QuantaSeal audit hash chain of docs/spec/audit-v1.md: the
// [Event] record and its hash, the group-committed append path [Log], signed
// [Checkpoint]s, the JSON Lines export and the [Verify] function an auditor runs.
//
// It is a pure core: it defines the [Store] contract and never touches a database
// driver or the network. audit/pgstore (PostgreSQL, pgx) and audit/sqlitestore (the
// embedded store) implement [Store]; audit/audittest is the contract suite both pass,
// tamper cases included.
//
// # Hashing
//
// An event's hash is SHA-256 over "quantaseal audit v1", a zero byte and the RFC 8785
// (JCS) form of the event without its "hash" member. [Canonicalize] is a general JCS
// implementation; events use a hand-unrolled form of it that a test checks against the
// general one. [Event.Time] is kept as the exact string that was hashed
// ([TimeLayout]: UTC, nine fractional digits), so no parse/format round trip can
// change a hash.
//
// # Group commit
//
// [Log.Append] hands the event to one committer goroutine and waits. The committer
// takes every event queued at that moment (up to Config.MaxBatch) into one store
// transaction, so under load N callers share one commit and one fsync, and an idle
// caller is committed at once, without a batching delay. Config.MaxDelay optionally
// lets a batch linger when the previous batch was not a singleton. Seq, time,
// prev_hash and hash are assigned from the chain heads the store passes to build —
// heads it locked, or heads it remembers and confirms under lock as it commits — so a
// stale head in memory can cost a retry but never a fork: a failed batch fails every
// caller in it with [ErrUnavailable] and the next batch starts from the committed
// head. An Append waits at most Config.AppendTimeout and ignores the caller's
// cancellation: a client that hangs up cannot skip its record.
//
// # Several writers
//
// Chains are named "<tenant_id>/<writer id>" (Config.WriterID, default "w1"). The
// store serialises appends on each chain's head row (PostgreSQL SELECT … FOR UPDATE in
// chain-id order; SQLite's single writer), so any number of gateway processes may share
// a writer id without forking a chain; giving each replica its own writer id shards the
// log so replicas never wait on each other. A store refuses a batch that does not
// continue its heads' seq and prev_hash, and UNIQUE (chain_id, seq) in both schemas is
// the last line of defence. With Config.MaxInFlight > 1 (PostgreSQL) the next batch
// is sent while the previous one commits, built on the heads it claimed. The choices
// and their measurements are in docs/design/audit-chains.md.
//
// # Checkpoints
//
// The committer signs a chain's head with ML-DSA-65 ([Signer], context
// [CheckpointContext]) at every CheckpointEvery-th event (default 1,000), in the same
// transaction as the events; at the end of a batch whose chain was last signed more
// than CheckpointInterval (default 5 s) ago; over a head found unsigned for longer than
// the interval (a crashed writer's tail); from a ticker once an event has been unsigned
// for half the interval; and on [Log.Flush] and [Log.Close].
//
// # Verification
//
// [Verify] returns a [*VerifyError] naming the chain, seq and member of the first
// break. Truncation is detected when it removes an event a checkpoint signs, or leaves
// an unsigned tail longer than a correctly running gateway would (MaxUnsigned events or
// MaxCheckpointLag of time). Cutting only events after the newest checkpoint, within
// those bounds, is not detectable from the export alone; an auditor who fetched a later
// checkpoint (GET /api/v2/audit/checkpoints/latest) detects it by verifying the
// export against that checkpoint too.
package audit
