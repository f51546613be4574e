-- Audit hash chains (docs/spec/audit-v1.md). One row per chain holds its head; appends
-- lock that row (SELECT ... FOR UPDATE) so writers in several processes never fork a
-- chain. The UNIQUE constraints on audit_events are the last line of defence.
CREATE TABLE audit_chains (
    chain_id        text        PRIMARY KEY,
    tenant_id       text        NOT NULL,
    head_seq        bigint      NOT NULL DEFAULT 0,
    head_hash       text        NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    checkpoint_seq  bigint      NOT NULL DEFAULT 0,
    checkpoint_time timestamptz
);
CREATE INDEX audit_chains_tenant ON audit_chains (tenant_id, chain_id);

CREATE TABLE audit_events (
    id             text        PRIMARY KEY,
    chain_id       text        NOT NULL REFERENCES audit_chains (chain_id),
    seq            bigint      NOT NULL CHECK (seq >= 1),
    tenant_id      text        NOT NULL,
    integration_id text        NOT NULL,
    time           timestamptz NOT NULL,
    prev_hash      text        NOT NULL,
    hash           text        NOT NULL,
    body           text        NOT NULL, -- the event's JSON, all members; reads return it
    CONSTRAINT audit_events_chain_seq  UNIQUE (chain_id, seq),
    CONSTRAINT audit_events_chain_prev UNIQUE (chain_id, prev_hash)
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_integration ON audit_events (tenant_id, integration_id, id);
CREATE INDEX audit_events_chain_time ON audit_events (chain_id, time);

CREATE TABLE audit_checkpoints (
    chain_id  text        NOT NULL REFERENCES audit_chains (chain_id),
    seq       bigint      NOT NULL,
    tenant_id text        NOT NULL,
    time      timestamptz NOT NULL,
    body      text        NOT NULL, -- {"note","key_id","signature"}
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX audit_checkpoints_tenant ON audit_checkpoints (tenant_id, chain_id, seq);
