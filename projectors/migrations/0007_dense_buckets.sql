-- Dense search per bucket of users (adapters/vector_buckets.py): 32 partial HNSW indexes,
-- each over the users whose md5(user_id)'s first byte is b modulo 32, replace the one index
-- over every user's vectors. A search walks its own bucket's graph instead of filtering
-- other users' vectors out of a shared one (~6 ms of Postgres per search at 10k memories in
-- a 110k-row table, ~1 ms in its bucket). Existing tables build the indexes here, holding
-- writes for as long as that takes (~30 s per 100k memories); a replay builds them at its end.
DO $$
BEGIN
    FOR b IN 0..31 LOOP
        EXECUTE format('CREATE INDEX IF NOT EXISTS memories_embedding_b%s ON memories'
                       ' USING hnsw (embedding vector_cosine_ops)'
                       ' WHERE (get_byte(decode(md5(user_id), ''hex''), 0) %% 32) = %s', b, b);
    END LOOP;
END
$$;
DROP INDEX IF EXISTS memories_embedding_hnsw;
