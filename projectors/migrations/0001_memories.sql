-- The Postgres read model of memories. {dim} is the embedder's dimension, fixed when
-- the model is created (a different embedder needs a new model and a replay).
CREATE TABLE memories (
    id               uuid PRIMARY KEY,
    user_id          text        NOT NULL,
    agent_id         text,
    run_id           text,
    app_id           text,
    text             text        NOT NULL,
    embedding        vector({dim}) NOT NULL,
    embedding_model  text        NOT NULL,
    metadata         jsonb       NOT NULL DEFAULT '{}',
    categories       text[]      NOT NULL DEFAULT '{}',
    importance       real,
    state            text        NOT NULL DEFAULT 'active',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    occurred_at      timestamptz NOT NULL,
    version          integer     NOT NULL DEFAULT 1,
    last_event_id    uuid        NOT NULL,
    tsv              tsvector GENERATED ALWAYS AS (to_tsvector('english', text)) STORED
);
CREATE INDEX memories_embedding_hnsw ON memories USING hnsw (embedding vector_cosine_ops);
CREATE INDEX memories_user_created ON memories (user_id, created_at DESC);
CREATE INDEX memories_tsv ON memories USING gin (tsv);
CREATE INDEX memories_metadata ON memories USING gin (metadata jsonb_path_ops);

-- Where each projection stands in the log, written in the same transaction as its data.
CREATE TABLE projection_offsets (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    "offset"    bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
