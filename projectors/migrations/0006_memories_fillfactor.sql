-- Room on each page for a row's next version, so the access counts every search appends
-- (MemoryAccessed: access_count, last_accessed_at, no indexed column) are HOT updates: no new
-- entry in any of the table's eight indexes. With full pages each was a new row version in
-- all of them, HNSW included: 6.8 ms of Postgres CPU per search's ten rows, against 0.3 ms
-- (docs/search.md). Pages written from now on; a replay rewrites the whole table this way.
ALTER TABLE memories SET (fillfactor = 80);
