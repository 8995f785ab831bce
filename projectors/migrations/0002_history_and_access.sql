-- Every event that touched a memory, for GET /v1/memories/{id}/history and audits.
CREATE TABLE memory_history (
    event_id        uuid        NOT NULL,
    memory_id       uuid        NOT NULL,
    user_id         text        NOT NULL,
    event_type      text        NOT NULL,
    actor           text        NOT NULL,
    correlation_id  text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    log_partition   integer     NOT NULL,
    log_offset      bigint      NOT NULL,
    old_text        text,
    new_text        text,
    old_metadata    jsonb,
    new_metadata    jsonb,
    reason          text,
    PRIMARY KEY (event_id, memory_id)
);
CREATE INDEX memory_history_memory ON memory_history (memory_id, occurred_at);

ALTER TABLE memories ADD COLUMN access_count integer NOT NULL DEFAULT 0;
ALTER TABLE memories ADD COLUMN last_accessed_at timestamptz;
ALTER TABLE memories ADD CONSTRAINT memories_state
    CHECK (state IN ('active', 'archived', 'forgotten', 'deleted'));
CREATE INDEX memories_text_trgm ON memories USING gin (text gin_trgm_ops);
CREATE INDEX memories_user_scope ON memories (user_id, agent_id, run_id, app_id) WHERE state = 'active';
