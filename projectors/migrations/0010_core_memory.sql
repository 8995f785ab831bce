-- Core memory blocks (domain/core_memory.py): each user's small named texts, always first in
-- /v1/context. agent_id '' is a user-wide block (a primary key takes no NULL). Every edit leaves
-- a history row, a conflicting one too (applied false, with why). UserErased deletes both
-- (erase_user_rows: by user_id).
CREATE TABLE core_memory_blocks (
    user_id        text        NOT NULL,
    agent_id       text        NOT NULL DEFAULT '',
    label          text        NOT NULL,
    value          text        NOT NULL,
    limit_tokens   integer     NOT NULL,
    description    text,
    version        bigint      NOT NULL,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    last_event_id  uuid        NOT NULL,
    PRIMARY KEY (user_id, agent_id, label)
);

CREATE TABLE core_memory_history (
    event_id        uuid        PRIMARY KEY,
    user_id         text        NOT NULL,
    agent_id        text        NOT NULL DEFAULT '',
    label           text        NOT NULL,
    event_type      text        NOT NULL,
    actor           text        NOT NULL,
    correlation_id  text        NOT NULL,
    occurred_at     timestamptz NOT NULL,
    log_partition   integer     NOT NULL,
    log_offset      bigint      NOT NULL,
    version         bigint,
    old_value       text,
    new_value       text,
    applied         boolean     NOT NULL,
    skipped         text
);
CREATE INDEX core_memory_history_block ON core_memory_history (user_id, agent_id, label, log_partition, log_offset);
