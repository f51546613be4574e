-- Audit hash chains (docs/spec/audit-v1.md), embedded store. SQLite serialises writers
-- (transactions begin IMMEDIATE), so reading and advancing a chain head inside one
-- transaction cannot race; the UNIQUE constraints are the last line of defence.
-- Times are text in the fixed-width layout 2006-01-02T15:04:05.000000000Z, which sorts
-- lexically in time order.
CREATE TABLE audit_chains (
    chain_id        TEXT    PRIMARY KEY,
    tenant_id       TEXT    NOT NULL,
    head_seq        INTEGER NOT NULL DEFAULT 0,
    head_hash       TEXT    NOT NULL DEFAULT '0000000000000000000000000000000000000000000000000000000000000000',
    checkpoint_seq  INTEGER NOT NULL DEFAULT 0,
    checkpoint_time TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX audit_chains_tenant ON audit_chains (tenant_id, chain_id);

CREATE TABLE audit_events (
    id             TEXT    PRIMARY KEY,
    chain_id       TEXT    NOT NULL REFERENCES audit_chains (chain_id),
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    tenant_id      TEXT    NOT NULL,
    integration_id TEXT    NOT NULL,
    time           TEXT    NOT NULL,
    prev_hash      TEXT    NOT NULL,
    hash           TEXT    NOT NULL,
    body           TEXT    NOT NULL,
    UNIQUE (chain_id, seq),
    UNIQUE (chain_id, prev_hash)
);
CREATE INDEX audit_events_tenant ON audit_events (tenant_id, id);
CREATE INDEX audit_events_tenant_integration ON audit_events (tenant_id, integration_id, id);
CREATE INDEX audit_events_chain_time ON audit_events (chain_id, time);

CREATE TABLE audit_checkpoints (
    chain_id  TEXT    NOT NULL REFERENCES audit_chains (chain_id),
    seq       INTEGER NOT NULL,
    tenant_id TEXT    NOT NULL,
    time      TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    PRIMARY KEY (chain_id, seq)
);
CREATE INDEX audit_checkpoints_tenant ON audit_checkpoints (tenant_id, chain_id, seq);
