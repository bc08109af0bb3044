-- enqueue: append a batch of jobs, each to its key, with dedup and the depth
-- check, and schedule the keys that were idle. One atomic step (G5, G9, G10)
-- for the whole batch; within it, jobs are taken in argument order, so two
-- jobs of one key keep their order.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: max_depth (0 = none), dedup_ttl_ms, then 5 per job: customer, code,
--       body, webhook_id ("" = none), and the webhook id's digest: the first
--       16 bytes of its SHA-256 (computed by the caller, enqueue.c: in C it
--       costs a fraction of what hashing in Lua costs Redis; "" = none)
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
-- and one RPUSH of all its jobs; per job with a webhook-id, one HGET per
-- live dedup generation but the newest and one HSETNX in the newest (below).
-- A key with jobs refused (duplicate or full) takes one more ZINCRBY to give
-- their count back.
--
-- Dedup layout (G9, DESIGN 3.3): a webhook-id is remembered as a 16-byte
-- field (the first 128 bits of its SHA-256, so no two ids are compared on
-- fewer bits) in a small hash, `dd:<gen>:<i>`, whose value packs the first
-- job's id number and the moment it was stored: n * 1024 + slot, the slot
-- being the 1/1024th of the generation's window it arrived in. A generation
-- takes the ids of a window of dedup_ttl / DD_WINDOWS (or fewer ids, when it
-- is full) and is spread over M hashes by the digest's first 32 bits, M
-- sized from the rate of the generation before so that each hash holds about
-- DD_FILL ids: Redis keeps them as listpacks (about 24 bytes an id, where a
-- string key with an expiry costs ~180). A lookup reads the digest in every
-- live generation and takes an entry as a duplicate while its slot's end
-- plus the ttl lies ahead: remembered at least dedup_ttl, at most 1/1024 of
-- a window longer. A generation whose every entry is past that is deleted
-- whole, DD_DROP hashes per call, by the calls that come after. The list of
-- generations is one small string, `dd`: the next generation number, then
-- six numbers per generation (oldest first): number, start ms, window ms,
-- M, the shard's first job number when it opened, hashes deleted so far;
-- stored as big-endian doubles (struct.pack '>d...': struct.unpack reads
-- them in one C call, where parsing the same numbers from decimal text cost
-- Redis about 80,000 instructions a call with four generations). A `dd` of
-- decimal text (written before 2026-12-05) is read as well.
local max_depth = tonumber(ARGV[1])
local ttl = ARGV[2]
local n = (#ARGV - 2) / 5
if not max_depth or not tonumber(ttl) or tonumber(ttl) < 1 or n < 1 or n % 1 ~= 0 then
  return redis.error_reply('ERR enqueue: ARGV must be max_depth, dedup_ttl_ms, then 5 per job')
end
local reply = {}

local t = redis.call('TIME')
local received = t[1] .. string.sub('00000' .. t[2], -6, -4)
-- Dedup generations (see above), read when the batch has a webhook-id.
local DD_WINDOWS, DD_FILL, DD_SLOTS, DD_DROP = 2, 64, 1024, 500
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl_ms = tonumber(ttl)
local gens, cur, dd_next, dd_dirty = false, false, 1, false

-- The end of generation g's memory: its last slot's end plus the ttl.
local function gen_end(g)
  return g.start + g.w + math.ceil(g.w / DD_SLOTS) + ttl_ms
end

local function dd_open()
  gens = {}
  local v = redis.call('GET', P .. 'dd')
  local nums = {}
  if v and string.find(v, '^%d') then
    -- Decimal text, as written before 2026-12-05.
    for x in string.gmatch(v, '%d+') do
      nums[#nums + 1] = tonumber(x)
    end
  elseif v and #v >= 8 then
    nums = {struct.unpack('>' .. string.rep('d', math.floor(#v / 8)), v)}
    nums[#nums] = nil -- struct.unpack's next position
  end
  dd_next = nums[1] or 1
  -- Expired generations are deleted, DD_DROP hashes per call, and dropped
  -- from the list; the others are kept, oldest first.
  local budget = DD_DROP
  for j = 2, #nums - 5, 6 do
    local g = {id = nums[j], start = nums[j + 1], w = nums[j + 2], m = nums[j + 3],
               first = nums[j + 4], del = nums[j + 5]}
    g.pre = P .. 'dd:' .. string.format('%d', g.id) .. ':'
    g.stop = gen_end(g)
    if now >= g.stop then
      dd_dirty = true
      if budget > 0 then
        local upto = math.min(g.del + budget, g.m)
        local doomed = {}
        for i = g.del, upto - 1 do
          doomed[#doomed + 1] = g.pre .. i
        end
        if #doomed > 0 then
          redis.call('UNLINK', unpack(doomed))
        end
        budget = budget - #doomed
        g.del = upto
      end
      if g.del < g.m then
        gens[#gens + 1] = g
      end
    else
      gens[#gens + 1] = g
    end
  end
end

-- The generation this batch goes to (its first job is number `first`).
-- The newest one takes it unless its window has passed or the batch would
-- overfill it; then a new one opens, with M sized for the rate the last one
-- saw over a window (at most 8 times its M when it filled up early: a burst
-- does not make M huge) and at least for the batch itself. A generation's
-- count is the shard's job numbers given since it opened (jobs without a
-- webhook-id included: an upper bound), so no call writes `dd` but those
-- that open or delete a generation.
local function dd_pick(first)
  local last = gens[#gens]
  local w = math.max(1, math.floor(ttl_ms / DD_WINDOWS))
  if last and now >= last.stop then
    last = false
  end
  if last and now < last.start + last.w and first + n - last.first <= last.m * DD_FILL then
    cur = last
  else
    local m = 1
    if last then
      local rate = (first - last.first) / math.max(1, now - last.start)
      m = math.ceil(rate * w / DD_FILL)
      if now < last.start + last.w then
        m = math.min(m, last.m * 8)
      end
    end
    m = math.max(1, m, math.ceil(n / DD_FILL))
    cur = {id = dd_next, start = now, w = w, m = m, first = first, del = 0,
           pre = P .. 'dd:' .. string.format('%d', dd_next) .. ':'}
    cur.stop = gen_end(cur)
    dd_next = dd_next + 1
    gens[#gens + 1] = cur
    dd_dirty = true
  end
end

local function dd_save()
  local nums = {dd_next}
  for _, g in ipairs(gens) do
    local k = #nums
    nums[k + 1], nums[k + 2], nums[k + 3] = g.id, g.start, g.w
    nums[k + 4], nums[k + 5], nums[k + 6] = g.m, g.first, g.del
  end
  redis.call('SET', P .. 'dd', struct.pack('>' .. string.rep('d', #nums), unpack(nums)))
end

-- The name of hash i of a generation. Numbers are printed with
-- string.format('%d') (about 2,400 instructions of Redis): a number
-- concatenated or passed to redis.call is printed as "%.14g" (about 3,900).
local function bucket(g, i)
  return g.pre .. string.format('%d', i)
end

-- Looks the webhook-id up in every live generation (the current one and
-- `older`, filled once dd_pick has chosen the current one); when it is new,
-- stores it in the current one for job number `num`. Returns the first
-- job's id number when it is a duplicate, else false and the hash and field
-- it was stored at (so that a refusal can take it back).
local older = {}
local function dd_check(f, num)
  local b1, b2, b3, b4 = string.byte(f, 1, 4)
  local a = ((b1 * 256 + b2) * 256 + b3) * 256 + b4
  for _, g in ipairs(older) do
    local v = redis.call('HGET', bucket(g, a % g.m), f)
    if v then
      v = tonumber(v)
      local slot = v % DD_SLOTS
      if g.start + math.ceil((slot + 1) * g.w / DD_SLOTS) + ttl_ms > now then
        return (v - slot) / DD_SLOTS
      end
    end
  end
  local hk = bucket(cur, a % cur.m)
  local slot = math.floor((now - cur.start) * DD_SLOTS / cur.w)
  local v = string.format('%d', num * DD_SLOTS + slot)
  if redis.call('HSETNX', hk, f, v) == 0 then
    -- Already in the current generation, whose entries are all remembered
    -- still (its window is shorter than the ttl).
    return math.floor(tonumber(redis.call('HGET', hk, f)) / DD_SLOTS)
  end
  return false, hk, f
end

-- Before the first write that may take memory: with Redis over maxmemory
-- (noeviction) that write is refused and the call changes nothing, unless
-- expired dedup generations were deleted first, which is what frees the
-- memory of a Redis full of remembered ids.
local dd_wanted = false
for i = 0, n - 1 do
  if ARGV[6 + 5 * i] ~= '' then
    if #ARGV[7 + 5 * i] ~= 16 then
      return redis.error_reply('ERR enqueue: job ' .. (i + 1) .. ': a webhook id needs its 16-byte digest')
    end
    dd_wanted = true
  end
end
if dd_wanted then
  dd_open()
end

-- Job ids of this batch: SHARD-(first .. first+n-1). A job that turns out a
-- duplicate or full leaves its number unused.
local first = redis.call('INCRBY', P .. 'ids', n) - n + 1
if gens then
  dd_pick(first)
  -- The generations a lookup reads besides the current one.
  for _, g in ipairs(gens) do
    if g ~= cur and now < g.stop then
      older[#older + 1] = g
    end
  end
end

-- The batch's keys, in the order they first appear, with their job counts.
local order, groups, keyof = {}, {}, {}
for i = 0, n - 1 do
  local a = 3 + 5 * i
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
  g.base = tonumber(redis.call('ZINCRBY', P .. 'depth', string.format('%d', g.count), key)) - g.count
end

-- Dedup and the depth check, job by job, in argument order. A job refused
-- as full deletes its dd entry again at once, so a later job of the batch
-- with the same webhook-id is judged on its own.
local stored, dups, fulls = 0, 0, 0
for i = 0, n - 1 do
  local a = 3 + 5 * i
  local g = groups[keyof[i]]
  local id = SHARD .. '-' .. string.format('%d', first + i)
  local was, dk, df = false, false, false
  if ARGV[a + 3] ~= '' then
    was, dk, df = dd_check(ARGV[a + 4], first + i)
  end
  if was then
    reply[3 * i + 1], reply[3 * i + 2], reply[3 * i + 3] = 1, SHARD .. '-' .. string.format('%d', was), 0
    dups = dups + 1
  elseif max_depth > 0 and g.base + #g.ids >= max_depth then
    if dk then
      redis.call('HDEL', dk, df)
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
    local seq = redis.call('HINCRBY', P .. 'seq', key, string.format('%d', k)) - k
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

if dd_dirty then
  dd_save()
end
if stored > 0 then stat('accepted', stored) end
if dups > 0 then stat('duplicate', dups) end
if fulls > 0 then stat('full', fulls) end
if woke then
  wake()
end
return reply
