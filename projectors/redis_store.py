"""The Redis read model's writes (projectors/redis_projection.RedisWrites) as one Lua script a batch.

`RedisBatch` collects a batch's writes as the script's items; `RedisProjector` runs `APPLY_LUA`
on them (projectors/redis_projector.py). Redis runs a script without interleaving any other
command, and its effects reach the AOF (and replicas) as one MULTI/EXEC block after it ends, so a
crash leaves the batch and its watermarks or neither. Redis does not roll back a script that fails
halfway, so the script never fails halfway: it first checks the whole batch (payload shape, and the
type of every key it will write) and only then writes, with commands that cannot fail on checked keys.

Idempotency, three guards deep: an event at or below its partition's watermark is skipped; a
document remembers the log position of the event that last changed it and never takes an event
from at or before that position (an older version never overwrites a newer one, even if the
watermarks were lost); a create never overwrites an existing document (deleted ones are kept as
tombstones).

States (as in Postgres): a consolidation's summary is created like a memory and, when it is
new, its sources that are active or forgotten become `archived`; a forgotten memory (active
or archived before) is `forgotten`; a restore makes a forgotten or archived one `active`.
Only active memories are in `ids`/`recent`; archived and forgotten ones move to `inactive`
with their score, which a restore puts back and a scope delete still reaches. Every change
of state bumps the user's generation, so cached search answers are invalidated.

Erasure (UserErased, t = 'e'; docs/security.md): every document of the user, tombstones
included (`user:<id>:all` lists every document ever created for the user), the user's
sets, their cached search answers and their stored Idempotency-Key answers (each listed
in a per-user index by its writer) are deleted in the same script; the generation moves
on. O(the user's keys): no keyspace scan, so an erasure never stalls Redis. Tombstones
written before `all` existed are found after a replay of this read model.
"""

from __future__ import annotations

from projectors.applied import Applied
from projectors.redis_projection import iso, project

# The command API indexes its stored Idempotency-Key answers (which quote memory text) per
# user under this prefix, so an erasure finds them (command_api/idempotency.py).
IDEM_USER_INDEX = "recallstack:idem:user:"
# The query API indexes its cached search answers per user the same way (query_api/caches.py).
ANSWER_USER_INDEX = "rs:qc:index:"

# ARGV: prefix, topic, batch (JSON array of items), recent limit. Item: {p, o} (partition
# and offset as digit strings) plus, for an event that changes memories, t (c create,
# u update, d delete, s scope delete, k consolidate, f forget, r restore, e erase), user_id, eid,
# and the op's fields.
APPLY_LUA = r"""
local prefix, topic, limit = ARGV[1], ARGV[2], tonumber(ARGV[4])
local IDEM_INDEX = ARGV[7]  -- + user id: the set of that user's Idempotency-Key answer keys
local ANSWER_INDEX = ARGV[8]  -- + user id: the set of that user's cached search answer keys
-- ARGV[5]: the live-version key when following the live version ('' when writing a pinned one).
if ARGV[5] ~= '' then
  local live = redis.call('GET', ARGV[5]) or '1'
  if prefix ~= ARGV[6] .. live then return redis.error_reply('RELOCATED to ' .. ARGV[6] .. live) end
end
local decoded, batch = pcall(cjson.decode, ARGV[3])
if not decoded or type(batch) ~= 'table' then
  return redis.error_reply('recallstack redis projector: the batch is not a JSON array')
end

local wm_key = prefix .. ':wm:' .. topic
local function doc_key(id) return prefix .. ':mem:' .. id end
local function user_key(user, what) return prefix .. ':user:' .. user .. ':' .. what end

local DOC_FIELDS = {id = true, user_id = true, agent_id = true, run_id = true, app_id = true, text = true,
  metadata = true, categories = true, importance = true, created_at = true, updated_at = true,
  occurred_at = true, embedding_model = true, expires_at = true}
local REQUIRED = {'id', 'user_id', 'text', 'metadata', 'categories', 'created_at', 'updated_at',
  'occurred_at', 'embedding_model'}
local SET_FIELDS = {text = true, embedding_model = true, metadata = true, categories = true, importance = true,
  expires_at = true}  -- expires_at '': cleared (never expires)
local SCOPE_FIELDS = {agent_id = true, run_id = true, app_id = true}

-- Phase 1: check everything, write nothing. -------------------------------------------

local function is_str(v) return type(v) == 'string' and v ~= '' end
local function is_digits(v) return type(v) == 'string' and string.match(v, '^%d+$') ~= nil end

local function check_key(key, want, integer_field)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then return key .. ' holds a ' .. t .. ', not a ' .. want end
  if t == 'string' then
    if not string.match(redis.call('GET', key), '^%d+$') then return key .. ' is not an integer' end
  elseif t == 'hash' and integer_field then
    local v = redis.call('HGET', key, integer_field)
    if v and not string.match(v, '^%d+$') then return key .. ' field ' .. integer_field .. ' is not an integer' end
  end
end

local function check_user(user)
  return check_key(user_key(user, 'ids'), 'zset') or check_key(user_key(user, 'recent'), 'zset')
    or check_key(user_key(user, 'inactive'), 'zset') or check_key(user_key(user, 'gen'), 'string')
    or check_key(user_key(user, 'all'), 'set')
end

local function check_strings(tbl, allowed, what)
  if type(tbl) ~= 'table' then return what .. ' is not an object' end
  for k, v in pairs(tbl) do
    if not allowed[k] then return what .. ' has an unknown field ' .. tostring(k) end
    if type(v) ~= 'string' then return what .. '.' .. k .. ' is not a string' end
  end
end

local function check_item(it)
  if type(it) ~= 'table' then return 'not an object' end
  if not is_digits(it.p) or not is_digits(it.o) then return 'p and o must be digit strings' end
  local t = it.t
  if t == nil then return nil end
  if type(t) ~= 'string' or not string.match(t, '^[cudskfre]$') then return 'unknown op ' .. tostring(t) end
  if not is_str(it.user_id) or not is_str(it.eid) then return 'user_id and eid are required' end
  if t == 'e' then
    return check_user(it.user_id) or check_key(IDEM_INDEX .. it.user_id, 'set')
      or check_key(ANSWER_INDEX .. it.user_id, 'set')
  end
  if t ~= 's' and not is_str(it.id) then return 'id is required' end
  if t ~= 'c' and not is_str(it.at) then return 'at is required' end
  local err
  if t == 'k' then
    if type(it.sources) ~= 'table' then return 'sources is not an array' end
    for _, id in ipairs(it.sources) do
      if not is_str(id) then return 'sources holds a non-string' end
      err = check_key(doc_key(id), 'hash', 'version')
      if err then return err end
    end
  end
  if t == 'c' or t == 'k' then
    if type(it.score) ~= 'string' or not string.match(it.score, '^%-?%d+$') then return 'score is not an integer' end
    err = check_strings(it.doc, DOC_FIELDS, 'doc')
    if err then return err end
    for _, f in ipairs(REQUIRED) do
      if it.doc[f] == nil then return 'doc.' .. f .. ' is missing' end
    end
    if it.doc.id ~= it.id or it.doc.user_id ~= it.user_id then return 'doc.id/user_id differ from the item' end
  elseif t == 'u' then
    err = check_strings(it.set, SET_FIELDS, 'set')
  elseif t == 's' then
    err = check_strings(it.scope, SCOPE_FIELDS, 'scope')
  end
  if err then return err end
  if t ~= 's' then
    err = check_key(doc_key(it.id), 'hash', 'version')
    if err then return err end
  end
  err = check_user(it.user_id)
  if err then return err end
  if t == 's' then
    for _, set in ipairs({'ids', 'inactive'}) do
      for _, id in ipairs(redis.call('ZRANGE', user_key(it.user_id, set), 0, -1)) do
        err = check_key(doc_key(id), 'hash', 'version')
        if err then return err end
      end
    end
  end
end

if #batch == 0 and next(batch) ~= nil then
  return redis.error_reply('recallstack redis projector: the batch is not a JSON array')
end
local err = check_key(wm_key, 'hash')
if err then return redis.error_reply('recallstack redis projector: ' .. err) end
for _, v in ipairs(redis.call('HVALS', wm_key)) do
  if not string.match(v, '^%d+$') then return redis.error_reply('recallstack redis projector: bad watermark') end
end
for i, it in ipairs(batch) do
  err = check_item(it)
  if err then
    return redis.error_reply('recallstack redis projector: batch item ' .. i .. ': ' .. err)
  end
end

-- Phase 2: apply. ------------------------------------------------------------------------

-- True when the document already reflects the log position (p, o) or a later one there.
local function seen(k, p, o, tf, pf, of)
  local pos = redis.call('HMGET', k, tf, pf, of)
  return pos[1] == topic and pos[2] == p and tonumber(pos[3]) >= o
end

local function refill(user)
  local recent, ids = user_key(user, 'recent'), user_key(user, 'ids')
  local have = redis.call('ZCARD', recent)
  if have < limit and redis.call('ZCARD', ids) > have then
    local rows = redis.call('ZREVRANGE', ids, have, limit - 1, 'WITHSCORES')
    local args = {}
    for j = 1, #rows, 2 do
      args[#args + 1] = rows[j + 1]
      args[#args + 1] = rows[j]
    end
    redis.call('ZADD', recent, unpack(args))
    redis.call('ZREMRANGEBYRANK', recent, 0, -(limit + 1))
  end
end

local function mark_deleted(k, id, it)
  redis.call('HSET', k, 'state', 'deleted', 'updated_at', it.at, '_t', topic, '_p', it.p, '_o', it.o, '_e', it.eid)
  redis.call('HINCRBY', k, 'version', 1)
  redis.call('ZREM', user_key(it.user_id, 'ids'), id)
  redis.call('ZREM', user_key(it.user_id, 'recent'), id)
  redis.call('ZREM', user_key(it.user_id, 'inactive'), id)
end

-- active <-> archived/forgotten: the id moves between `ids` (and `recent`) and `inactive`,
-- keeping its score (created_at), so a restore puts it back where it was.
local function set_state(k, id, it, from, to)
  redis.call('HSET', k, 'state', to, 'updated_at', it.at, '_t', topic, '_p', it.p, '_o', it.o, '_e', it.eid)
  redis.call('HINCRBY', k, 'version', 1)
  local ids, inactive = user_key(it.user_id, 'ids'), user_key(it.user_id, 'inactive')
  if from == 'active' then
    redis.call('ZADD', inactive, redis.call('ZSCORE', ids, id) or '0', id)
    redis.call('ZREM', ids, id)
    redis.call('ZREM', user_key(it.user_id, 'recent'), id)
    refill(it.user_id)
  elseif to == 'active' then
    local score = redis.call('ZSCORE', inactive, id) or '0'
    redis.call('ZREM', inactive, id)
    redis.call('ZADD', ids, score, id)
    local recent = user_key(it.user_id, 'recent')
    redis.call('ZADD', recent, score, id)
    redis.call('ZREMRANGEBYRANK', recent, 0, -(limit + 1))
  end
end

local apply = {}

-- Creates the document unless it exists; true when it did.
local function create(it)
  local k = doc_key(it.id)
  if redis.call('EXISTS', k) == 1 then return false end
  local args = {'state', 'active', 'version', '1', '_e', it.eid, '_t', topic, '_p', it.p, '_o', it.o,
    '_ct', topic, '_cp', it.p, '_co', it.o}
  for f, v in pairs(it.doc) do
    args[#args + 1] = f
    args[#args + 1] = v
  end
  redis.call('HSET', k, unpack(args))
  redis.call('ZADD', user_key(it.user_id, 'ids'), it.score, it.id)
  redis.call('SADD', user_key(it.user_id, 'all'), it.id)  -- tombstones too: what an erasure deletes
  local recent = user_key(it.user_id, 'recent')
  redis.call('ZADD', recent, it.score, it.id)
  redis.call('ZREMRANGEBYRANK', recent, 0, -(limit + 1))
  redis.call('INCR', user_key(it.user_id, 'gen'))
  return true
end

function apply.c(it, o)
  create(it)
end

local function changeable(k, it, o)
  local d = redis.call('HMGET', k, 'user_id', 'state', '_e')
  return d[1] == it.user_id and d[2] ~= 'deleted' and d[3] ~= it.eid and not seen(k, it.p, o, '_t', '_p', '_o')
end

function apply.u(it, o)
  local k = doc_key(it.id)
  if not changeable(k, it, o) then return end
  local args = {'updated_at', it.at, '_e', it.eid, '_t', topic, '_p', it.p, '_o', it.o}
  for f, v in pairs(it.set) do
    args[#args + 1] = f
    args[#args + 1] = v
  end
  redis.call('HSET', k, unpack(args))
  redis.call('HINCRBY', k, 'version', 1)
  redis.call('INCR', user_key(it.user_id, 'gen'))
end

function apply.d(it, o)
  local k = doc_key(it.id)
  if not changeable(k, it, o) then return end
  mark_deleted(k, it.id, it)
  redis.call('INCR', user_key(it.user_id, 'gen'))
  refill(it.user_id)
end

-- Only a new summary archives its sources (a second summary with the same id changes nothing).
function apply.k(it, o)
  if not create(it) then return end
  for _, id in ipairs(it.sources) do
    local k = doc_key(id)
    local state = redis.call('HGET', k, 'state')
    if (state == 'active' or state == 'forgotten') and changeable(k, it, o) then
      set_state(k, id, it, state, 'archived')
    end
  end
end

-- Forget (t = 'f') and restore (t = 'r'): from those states only, else nothing (not even the generation).
local TRANSITIONS = {f = {to = 'forgotten', from = {active = true, archived = true}},
                     r = {to = 'active', from = {forgotten = true, archived = true}}}

local function transition(it, o)
  local k, rule = doc_key(it.id), TRANSITIONS[it.t]
  local state = redis.call('HGET', k, 'state')
  if not (state and rule.from[state] and changeable(k, it, o)) then return end
  set_state(k, it.id, it, state, rule.to)
  redis.call('INCR', user_key(it.user_id, 'gen'))
end
apply.f, apply.r = transition, transition

function apply.s(it, o)
  -- Exactly the user's memories created before this event in the log that match the scope.
  local deleted, ids = 0, redis.call('ZRANGE', user_key(it.user_id, 'ids'), 0, -1)
  for _, id in ipairs(redis.call('ZRANGE', user_key(it.user_id, 'inactive'), 0, -1)) do
    ids[#ids + 1] = id  -- archived and forgotten memories are in the scope too
  end
  for _, id in ipairs(ids) do
    local k = doc_key(id)
    local d = redis.call('HMGET', k, 'agent_id', 'run_id', 'app_id')
    if (it.scope.agent_id == nil or d[1] == it.scope.agent_id)
        and (it.scope.run_id == nil or d[2] == it.scope.run_id)
        and (it.scope.app_id == nil or d[3] == it.scope.app_id)
        and not seen(k, it.p, o, '_ct', '_cp', '_co') and changeable(k, it, o) then
      mark_deleted(k, id, it)
      deleted = deleted + 1
    end
  end
  if deleted > 0 then
    redis.call('INCR', user_key(it.user_id, 'gen'))
    refill(it.user_id)
  end
end

local function delete_listed(index)
  for _, k in ipairs(redis.call('SMEMBERS', index)) do redis.call('DEL', k) end
  redis.call('DEL', index)
end

function apply.e(it, o)
  local ids = redis.call('SMEMBERS', user_key(it.user_id, 'all'))
  for _, set in ipairs({'ids', 'inactive'}) do  -- documents from before `all` existed
    for _, id in ipairs(redis.call('ZRANGE', user_key(it.user_id, set), 0, -1)) do ids[#ids + 1] = id end
  end
  for _, id in ipairs(ids) do
    local k = doc_key(id)
    if redis.call('TYPE', k)['ok'] == 'hash' and redis.call('HGET', k, 'user_id') == it.user_id then
      redis.call('DEL', k)
    end
  end
  for _, what in ipairs({'ids', 'recent', 'inactive', 'all'}) do redis.call('DEL', user_key(it.user_id, what)) end
  redis.call('INCR', user_key(it.user_id, 'gen'))
  delete_listed(ANSWER_INDEX .. it.user_id)
  delete_listed(IDEM_INDEX .. it.user_id)
end

local watermark, moved = {}, {}
local applied, skipped = 0, 0
for _, it in ipairs(batch) do
  if watermark[it.p] == nil then
    watermark[it.p] = tonumber(redis.call('HGET', wm_key, it.p) or '-1')
  end
  local o = tonumber(it.o)
  if o > watermark[it.p] then
    if it.t then apply[it.t](it, o) end
    watermark[it.p] = o
    moved[it.p] = it.o
    applied = applied + 1
  else
    skipped = skipped + 1
  end
end
for p, o in pairs(moved) do
  redis.call('HSET', wm_key, p, o)
end
return {applied, skipped}
"""


class RedisBatch:
    """RedisWrites as the items of one APPLY_LUA run: {p, o} (partition and offset as digit
    strings) plus, for a write that changes memories, t (the op), user_id, eid and the op's fields."""

    def __init__(self) -> None:
        self.items: list[dict] = []

    def _item(self, record: Applied, op: str | None = None, **fields) -> None:
        item: dict = {"p": str(record.partition), "o": str(record.offset)}
        if op is not None:
            item.update(t=op, **fields, user_id=record.event.user_id, eid=record.event.event_id)
        self.items.append(item)

    def create(self, at: Applied, doc: dict[str, str], score: int) -> None:
        self._item(at, "c", id=doc["id"], score=str(score), doc=doc)

    def consolidate(self, at: Applied, doc: dict[str, str], score: int, sources: list[str]) -> None:
        self._item(at, "k", id=doc["id"], score=str(score), doc=doc, at=iso(at.event.occurred_at), sources=sources)

    def update(self, at: Applied, memory_id: str, fields: dict[str, str]) -> None:
        self._item(at, "u", id=memory_id, at=iso(at.event.occurred_at), set=fields)

    def delete(self, at: Applied, memory_id: str) -> None:
        self._item(at, "d", id=memory_id, at=iso(at.event.occurred_at))

    def delete_scope(self, at: Applied, scope: dict[str, str]) -> None:
        self._item(at, "s", at=iso(at.event.occurred_at), scope=scope)

    def forget(self, at: Applied, memory_id: str) -> None:
        self._item(at, "f", id=memory_id, at=iso(at.event.occurred_at))

    def restore(self, at: Applied, memory_id: str) -> None:
        self._item(at, "r", id=memory_id, at=iso(at.event.occurred_at))

    def erase_user(self, at: Applied) -> None:
        self._item(at, "e", at=iso(at.event.occurred_at))

    def advance(self, at: Applied) -> None:
        self._item(at)


def encode(item: Applied) -> dict:
    """One record as the script takes it (everything a string: no float formatting in Lua)."""
    batch = RedisBatch()
    project(batch, item)
    return batch.items[0]
