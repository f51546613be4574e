-- A cheaper append path (issue 8). Every audited request waits for its event to commit,
-- so each event's index entries, triggers and comparisons are paid on the request path.
--
-- Collation "C" on identifiers and hashes. They are ASCII (ULIDs, chain ids, hex), so a
-- linguistic collation buys nothing and costs a strcoll() per comparison in every index
-- insert and lookup. Byte order is also the order the code relies on: Go sorts chain ids
-- (the head-lock order) and pages events by id (the ListEvents cursor) with byte
-- comparison, which en_US.UTF-8 and friends do not guarantee to agree with.
--
-- No foreign key from audit_events.chain_id: every append holds, or has just checked, the
-- chain's head row in the same transaction, so the row exists; the RI trigger re-proved it
-- for every event. Checkpoints are rare and keep theirs.
--
-- No UNIQUE (chain_id, prev_hash): its key is a random hash, so every insert dirtied a
-- random leaf and the index's whole working set grew without bound. The backstop against a
-- fork is the serialised head (row lock, or the compare-and-set of the one-statement
-- append) plus UNIQUE (chain_id, seq), whose inserts go to the right edge of the index; the
-- store also refuses a batch whose prev_hash does not link to the head it advances, and
-- the verifier reports any mis-link that got in some other way.
--
-- PRIMARY KEY (tenant_id, id) instead of PRIMARY KEY (id) plus INDEX (tenant_id, id): every
-- read of an event by id is scoped to its tenant (EventProof, ListEvents), so one index
-- serves both and ids stay unique where they are looked up.
--
-- On a populated database this rebuilds the indexes of audit_events (the table itself is
-- not rewritten: text to text is binary-compatible) under an ACCESS EXCLUSIVE lock, so
-- appends wait for it; schedule it like any index rebuild of that size.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_id_fkey;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_chain_prev;
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
DROP INDEX audit_events_tenant;
-- Re-added below, after both of its columns have the same collation.
ALTER TABLE audit_checkpoints DROP CONSTRAINT audit_checkpoints_chain_id_fkey;

ALTER TABLE audit_chains
    ALTER COLUMN chain_id  TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ALTER COLUMN head_hash TYPE text COLLATE "C";

ALTER TABLE audit_events
    ALTER COLUMN id             TYPE text COLLATE "C",
    ALTER COLUMN chain_id       TYPE text COLLATE "C",
    ALTER COLUMN tenant_id      TYPE text COLLATE "C",
    ALTER COLUMN integration_id TYPE text COLLATE "C",
    ALTER COLUMN prev_hash      TYPE text COLLATE "C",
    ALTER COLUMN hash           TYPE text COLLATE "C",
    ADD PRIMARY KEY (tenant_id, id);

ALTER TABLE audit_checkpoints
    ALTER COLUMN chain_id  TYPE text COLLATE "C",
    ALTER COLUMN tenant_id TYPE text COLLATE "C",
    ADD CONSTRAINT audit_checkpoints_chain_id_fkey FOREIGN KEY (chain_id) REFERENCES audit_chains (chain_id);
