-- User profiles (UserProfileUpdated): the latest version of each user's profile, a structured
-- summary of their memories (domain/profile.py) built by the consolidation worker. Older
-- versions stay in the log only. UserErased deletes the row (erase_user_rows: by user_id).
CREATE TABLE user_profiles (
    user_id        text        PRIMARY KEY,
    version        bigint      NOT NULL,
    profile        jsonb       NOT NULL,
    builder        text        NOT NULL,
    built_from     text,
    memory_count   bigint      NOT NULL DEFAULT 0,
    updated_at     timestamptz NOT NULL,
    last_event_id  uuid        NOT NULL
);
