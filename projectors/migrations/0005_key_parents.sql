-- The key that issued each API key (ApiKeyIssued v2): a key works only while every key up
-- its chain is unrevoked and unexpired (adapters/key_directory.py walks it), and revoking
-- a key revokes the keys it issued (command_api/handlers.py finds them here).
ALTER TABLE api_keys ADD COLUMN parent_key_id uuid;
CREATE INDEX api_keys_parent ON api_keys (parent_key_id) WHERE parent_key_id IS NOT NULL;
