-- Memory expiry (domain/expiry.py): when a memory stops being true; NULL never. Reads hide a
-- memory from its expires_at on (query_api/pg_reads.Scope); the forget worker finds the ones
-- to record as MemoryExpired through the partial index (few memories expire: it stays small).
ALTER TABLE memories ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS memories_expires_at ON memories (user_id, expires_at) WHERE expires_at IS NOT NULL;
