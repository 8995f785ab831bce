-- Identity read model: users, API keys (hashes only) and shares, from the identity events.
CREATE TABLE users (
    user_id        text        PRIMARY KEY,
    display_name   text,
    is_admin       boolean     NOT NULL DEFAULT false,
    registered_at  timestamptz NOT NULL,
    last_event_id  uuid        NOT NULL
);

CREATE TABLE api_keys (
    key_id          uuid        PRIMARY KEY,
    user_id         text        NOT NULL,
    prefix          text        NOT NULL,
    key_hash        text        NOT NULL UNIQUE,  -- sha256:<hex> of the whole key; the key is never stored
    scopes          text[]      NOT NULL,
    name            text,
    created_at      timestamptz NOT NULL,
    expires_at      timestamptz,
    revoked_at      timestamptz,
    revoked_reason  text,
    actor           text        NOT NULL
);
CREATE INDEX api_keys_user ON api_keys (user_id, created_at);

-- Read-only grants: grantee_user_id may read memory_id of user_id (its owner).
CREATE TABLE memory_shares (
    memory_id        uuid        NOT NULL,
    user_id          text        NOT NULL,
    grantee_user_id  text        NOT NULL,
    permission       text        NOT NULL,
    shared_at        timestamptz NOT NULL,
    PRIMARY KEY (memory_id, grantee_user_id)
);
CREATE INDEX memory_shares_grantee ON memory_shares (grantee_user_id, shared_at DESC);
