-- Registry schema: tenants, API keys, the vault's tenant keys and sealed credentials,
-- and integrations. Every tenant-owned table carries tenant_id, and every lookup by id
-- also names the tenant (see package registry, "Tenant scoping").

CREATE TABLE registry_tenants (
    id                      text        PRIMARY KEY,
    name                    text        NOT NULL,
    response_kem_public_key bytea       NOT NULL,
    response_key_id         text        NOT NULL,
    hmac_key_sealed         bytea       NOT NULL,
    hmac_key_id             text        NOT NULL,
    kms_key_id              text        NOT NULL DEFAULT '',
    created_at              timestamptz NOT NULL
);

CREATE TABLE registry_api_keys (
    id             text        PRIMARY KEY,
    tenant_id      text        NOT NULL REFERENCES registry_tenants (id),
    hash           bytea       NOT NULL UNIQUE,  -- SHA-256 of the key; the lookup index
    integration_id text        NOT NULL DEFAULT '',
    created_at     timestamptz NOT NULL,
    revoked_at     timestamptz
);
CREATE INDEX registry_api_keys_tenant ON registry_api_keys (tenant_id, integration_id);

-- No foreign key to registry_tenants: the vault creates a tenant's key while the tenant
-- is being created (to seal its HMAC key), before the tenant row exists.
CREATE TABLE registry_vault_keys (
    tenant_id         text        PRIMARY KEY,
    key_provider      text        NOT NULL,
    kms_key_id        text        NOT NULL,
    encapsulation_key bytea       NOT NULL,
    wrapped_seed      bytea       NOT NULL,
    created_at        timestamptz NOT NULL
);

CREATE TABLE registry_credentials (
    tenant_id   text        NOT NULL REFERENCES registry_tenants (id),
    id          text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    type        text        NOT NULL,
    fingerprint text        NOT NULL,
    ciphertext  bytea       NOT NULL,
    created_at  timestamptz NOT NULL,
    rotated_at  timestamptz,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE registry_integrations (
    tenant_id          text        NOT NULL REFERENCES registry_tenants (id),
    id                 text        NOT NULL UNIQUE,
    system_type        text        NOT NULL,
    name               text        NOT NULL,
    okta_domain        text        NOT NULL,
    credential_id      text        NOT NULL,
    allowed_operations text[]      NOT NULL,
    envelope           text        NOT NULL CHECK (envelope IN ('on_request', 'always', 'never')),
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name),
    -- Composite key: an integration can only use a credential of its own tenant, and a
    -- credential in use cannot be deleted.
    FOREIGN KEY (tenant_id, credential_id) REFERENCES registry_credentials (tenant_id, id)
);
CREATE INDEX registry_integrations_credential ON registry_integrations (tenant_id, credential_id);
