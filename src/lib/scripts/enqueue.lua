-- enqueue: append a batch of jobs, each to its key, with dedup and the depth
-- check, and schedule the keys that were idle. One atomic step (G5, G9, G10)
-- for the whole batch; within it, jobs are taken in argument order, so two
-- jobs of one key keep their order.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: max_depth (0 = none), dedup_ttl_ms, then 4 per job: customer, code,
--       body, webhook_id ("" = none)
-- Reply: {status, id, seq} per job, flattened: 0 stored, 1 duplicate (id of
-- the first), 2 full.
--
-- Why a batch: the intake sends the requests one event-loop pass collected
-- in one call, so Redis pays the call's fixed cost (script dispatch,
-- KEYS/ARGV tables, the reply, MULTI/EXEC around the replicated effects)
-- once per batch, and the batch's counters (ids, stats, TIME) once too.
-- Per key of the batch: one LLEN (only with a depth cap), one HINCRBY of its
-- seq, one RPUSH of all its jobs and one ZADD of its depth. Per job: one SET
-- of its webhook-id, when it has one.
local max_depth = tonumber(ARGV[1])
local ttl = ARGV[2]
local n = (#ARGV - 2) / 4
if not max_depth or n < 1 or n % 1 ~= 0 then
  return redis.error_reply('ERR enqueue: ARGV must be max_depth, dedup_ttl_ms, then 4 per job')
end
local reply = {}

local t = redis.call('TIME')
local received = t[1] .. string.sub('00000' .. t[2], -6, -4)
-- Job ids of this batch: SHARD-(first .. first+n-1). A job that turns out a
-- duplicate or full leaves its number unused.
local first = redis.call('INCRBY', P .. 'ids', n) - n + 1

-- Pass 1: dedup and depth, job by job; the jobs kept are grouped by key in
-- the order their keys first appear.
local order, groups = {}, {}
local stored, dups, fulls = 0, 0, 0
local function keep(i, a, customer, key, id, dd)
  local g = groups[key]
  if not g then
    g = {customer = customer, base = 0, ids = {}, at = {}, idx = {}}
    if max_depth > 0 then
      g.base = redis.call('LLEN', P .. 'q:' .. key)
    end
    groups[key] = g
    order[#order + 1] = key
  end
  if max_depth > 0 and g.base + #g.ids >= max_depth then
    if dd then
      redis.call('DEL', dd)
    end
    reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] = 2, '', 0
    fulls = fulls + 1
    return
  end
  g.ids[#g.ids + 1] = id
  g.at[#g.at + 1] = a
  g.idx[#g.idx + 1] = i
end

for i = 0, n - 1 do
  local a = 3 + 4 * i
  local customer, code, whid = ARGV[a], ARGV[a + 1], ARGV[a + 3]
  local id = SHARD .. '-' .. string.format('%d', first + i)
  local was, dd = false, false
  if whid ~= '' then
    -- NX GET: sets the id when the webhook-id is new, else answers the
    -- first job's id and changes nothing (Redis >= 7.0).
    dd = P .. 'dd:' .. whid
    was = redis.call('SET', dd, id, 'NX', 'GET', 'PX', ttl)
  end
  if was then
    reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] = 1, was, 0
    dups = dups + 1
  else
    keep(i, a, customer, customer .. ':' .. code, id, dd)
  end
end

-- Pass 2: per key, the seqs, one RPUSH, the depth index, and scheduling.
local woke = false
for _, key in ipairs(order) do
  local g = groups[key]
  local k = #g.ids
  if k > 0 then
    local seq = redis.call('HINCRBY', P .. 'seq', key, k) - k
    local recs = {}
    for j = 1, k do
      local a = g.at[j]
      -- Numbers formatted as integers (concatenation would print floats).
      recs[j] = g.ids[j] .. '\n' .. string.format('%d', seq + j) .. '\n' ..
                received .. '\n' .. ARGV[a + 3] .. '\n' .. ARGV[a + 2]
      local i = g.idx[j]
      reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] = 0, g.ids[j], seq + j
    end
    -- In slices: unpack() puts every value on Lua's C stack.
    local len
    for from = 1, k, 500 do
      len = redis.call('RPUSH', P .. 'q:' .. key, unpack(recs, from, math.min(from + 499, k)))
    end
    redis.call('ZADD', P .. 'depth', len, key)
    stored = stored + k
    if len == k then
      -- The key was idle, so it has no meta yet: schedule it.
      pin_indexes()
      redis.call('HSET', P .. 'm:' .. key, 'c', g.customer)
      if schedule(key, g.customer, false) == 'ready' then
        woke = true
      end
    end
  end
end

if stored > 0 then stat('accepted', stored) end
if dups > 0 then stat('duplicate', dups) end
if fulls > 0 then stat('full', fulls) end
if woke then
  wake()
end
return reply
