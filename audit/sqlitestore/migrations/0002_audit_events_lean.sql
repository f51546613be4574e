-- audit_events without the keys the append path paid for but nothing needed. Every
-- index is a B-tree insert per event and, per commit, a page or more written to the
-- WAL and fsynced; the committer runs in the gateway's process, on its CPU.
--
-- Dropped:
-- - UNIQUE (chain_id, prev_hash): keyed on a random hash, so each event landed on a
--   different leaf and the index's working set grew with the log. The fork backstop is
--   UNIQUE (chain_id, seq) plus the head row read and advanced under the write lock; a
--   mis-linked prev_hash is what Verify reports (docs/design/audit-chains.md).
-- - The foreign key to audit_chains: AppendBatch reads the chain's head row in the
--   same transaction before inserting, so the per-row lookup (foreign_keys is on in
--   internal/sqlitedb) proved nothing new.
-- - id as PRIMARY KEY: every read by id is per tenant, so UNIQUE (tenant_id, id) serves
--   them and the rowid table needs no second key.
-- - (tenant_id, integration_id, id): ListEvents filters with (? = '' OR
--   integration_id = ?), which SQLite cannot use as an index bound; the index was
--   never chosen.
-- Not WITHOUT ROWID on (chain_id, seq): a row is ~1 KB, near the ~1,000-byte limit
-- above which such a table moves the rest of a row to an overflow page of its own.
--
-- SQLite cannot drop constraints in place: this is its documented table rebuild, in
-- the runner's transaction. foreign_keys stays on, which is safe here because no table
-- references audit_events, so dropping the old table deletes no parent rows.
CREATE TABLE audit_events_new (
    chain_id       TEXT    NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    id             TEXT    NOT NULL,
    tenant_id      TEXT    NOT NULL,
    integration_id TEXT    NOT NULL,
    time           TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    body           TEXT    NOT NULL
);
INSERT INTO audit_events_new (chain_id, seq, id, tenant_id, integration_id, time, prev_hash, hash, body)
    SELECT chain_id, seq, id, tenant_id, integration_id, time, prev_hash, hash, body
    FROM audit_events ORDER BY chain_id, seq;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE UNIQUE INDEX audit_events_chain_seq ON audit_events (chain_id, seq);
CREATE UNIQUE INDEX audit_events_tenant_id ON audit_events (tenant_id, id);
CREATE INDEX audit_events_chain_time ON audit_events (chain_id, time);
