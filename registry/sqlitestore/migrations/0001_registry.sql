-- Registry schema for the embedded store; mirrors registry/pgstore's. Times are INTEGER
-- microseconds since the Unix epoch (UTC); allowed_operations is a JSON array of strings.

CREATE TABLE registry_tenants (
    id                      TEXT    PRIMARY KEY,
    name                    TEXT    NOT NULL,
    response_kem_public_key BLOB    NOT NULL,
    response_key_id         TEXT    NOT NULL,
    hmac_key_sealed         BLOB    NOT NULL,
    hmac_key_id             TEXT    NOT NULL,
    kms_key_id              TEXT    NOT NULL DEFAULT '',
    created_at              INTEGER NOT NULL
);

CREATE TABLE registry_api_keys (
    id             TEXT    PRIMARY KEY,
    tenant_id      TEXT    NOT NULL REFERENCES registry_tenants (id),
    hash           BLOB    NOT NULL UNIQUE,
    integration_id TEXT    NOT NULL DEFAULT '',
    created_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX registry_api_keys_tenant ON registry_api_keys (tenant_id, integration_id);

-- No foreign key to registry_tenants: see registry/pgstore's migration.
CREATE TABLE registry_vault_keys (
    tenant_id         TEXT    PRIMARY KEY,
    key_provider      TEXT    NOT NULL,
    kms_key_id        TEXT    NOT NULL,
    encapsulation_key BLOB    NOT NULL,
    wrapped_seed      BLOB    NOT NULL,
    created_at        INTEGER NOT NULL
);

CREATE TABLE registry_credentials (
    tenant_id   TEXT    NOT NULL REFERENCES registry_tenants (id),
    id          TEXT    NOT NULL UNIQUE,
    name        TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    fingerprint TEXT    NOT NULL,
    ciphertext  BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE registry_integrations (
    tenant_id          TEXT    NOT NULL REFERENCES registry_tenants (id),
    id                 TEXT    NOT NULL UNIQUE,
    system_type        TEXT    NOT NULL,
    name               TEXT    NOT NULL,
    okta_domain        TEXT    NOT NULL,
    credential_id      TEXT    NOT NULL,
    allowed_operations TEXT    NOT NULL,
    envelope           TEXT    NOT NULL CHECK (envelope IN ('on_request', 'always', 'never')),
    created_at         INTEGER NOT NULL,
    updated_at         INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    FOREIGN KEY (tenant_id, credential_id) REFERENCES registry_credentials (tenant_id, id)
);
CREATE INDEX registry_integrations_credential ON registry_integrations (tenant_id, credential_id);
