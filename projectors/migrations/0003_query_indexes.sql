-- For the query API: the temporal source and list sorted by when things happened.
CREATE INDEX memories_user_occurred ON memories (user_id, occurred_at DESC);
CREATE INDEX memory_history_user ON memory_history (user_id, memory_id);
