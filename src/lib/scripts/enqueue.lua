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
-- Every redis.call costs about 1 us besides its command, so the calls are
-- counted: per key of the batch, one ZINCRBY of its depth (which also gives
-- the depth check, since depth[key] = LLEN q:<key>), one HINCRBY of its seq
-- and one RPUSH of all its jobs; per job, one SET of its webhook-id when it
-- has one. A key with jobs refused (duplicate or full) takes one more
-- ZINCRBY to give their count back.
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

-- The batch's keys, in the order they first appear, with their job counts.
local order, groups, keyof = {}, {}, {}
for i = 0, n - 1 do
  local a = 3 + 4 * i
  local key = ARGV[a] .. ':' .. ARGV[a + 1]
  local g = groups[key]
  if not g then
    g = {customer = ARGV[a], count = 0, ids = {}, at = {}, idx = {}}
    groups[key] = g
    order[#order + 1] = key
  end
  g.count = g.count + 1
  keyof[i] = key
end
-- Count every job in at once; base = the depth before this batch.
for _, key in ipairs(order) do
  local g = groups[key]
  g.base = tonumber(redis.call('ZINCRBY', P .. 'depth', g.count, key)) - g.count
end

-- Dedup and the depth check, job by job, in argument order. A job refused
-- as full deletes its dd entry again at once, so a later job of the batch
-- with the same webhook-id is judged on its own.
local stored, dups, fulls = 0, 0, 0
for i = 0, n - 1 do
  local a = 3 + 4 * i
  local g = groups[keyof[i]]
  local id = SHARD .. '-' .. string.format('%d', first + i)
  local was, dd = false, false
  if ARGV[a + 3] ~= '' then
    -- NX GET: sets the id when the webhook-id is new, else answers the
    -- first job's id and changes nothing (Redis >= 7.0).
    dd = P .. 'dd:' .. ARGV[a + 3]
    was = redis.call('SET', dd, id, 'NX', 'GET', 'PX', ttl)
  end
  if was then
    reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] = 1, was, 0
    dups = dups + 1
  elseif max_depth > 0 and g.base + #g.ids >= max_depth then
    if dd then
      redis.call('DEL', dd)
    end
    reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] = 2, '', 0
    fulls = fulls + 1
  else
    g.ids[#g.ids + 1] = id
    g.at[#g.at + 1] = a
    g.idx[#g.idx + 1] = i
  end
end

-- Per key: give back the count of refused jobs, take the seqs, one RPUSH,
-- and schedule the key if it was idle.
local woke = false
for _, key in ipairs(order) do
  local g = groups[key]
  local k = #g.ids
  if k < g.count then
    if g.base + k == 0 then
      redis.call('ZREM', P .. 'depth', key)
      unpin('depth')
    else
      redis.call('ZINCRBY', P .. 'depth', k - g.count, key)
    end
  end
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
    for from = 1, k, 500 do
      redis.call('RPUSH', P .. 'q:' .. key, unpack(recs, from, math.min(from + 499, k)))
    end
    stored = stored + k
    if g.base == 0 then
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
