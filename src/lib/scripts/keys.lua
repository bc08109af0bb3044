-- keys: the deepest keys of one shard, by state (hookq keys, and the top
-- keys of hookq stats). Read-only. `depth` (key -> jobs queued) holds every
-- key with jobs, so the deepest of all are one ZREVRANGE away: O(log n + top).
-- For one state, the deepest keys of that state are found by walking `depth`
-- from the deepest down and keeping keys in that state, or, when the state's
-- own set is small (active, parked, held usually are), by looking at each of
-- its keys. Either way at most `limit` keys are looked at, so the cost is
-- bounded. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: state ('' = any, else ready|active|parked|held), top, limit
-- Reply: {total, inspected, now_ms, then 7 per key: key, state, depth,
--         attempts, when_ms (lease expiry or due time, -1 = none), reason
--         (why held, or the pending hold of an active key), last error}
-- where total is the number of keys in that state and inspected < total
-- means some keys of the state were not looked at (the answer may miss
-- some of them).
local want, top, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local D = P .. 'depth'

local nkeys = redis.call('ZCARD', D)
if nkeys > 0 and redis.call('ZSCORE', D, LEASE_PIN) then
  nkeys = nkeys - 1 -- the pin, at -inf: after every key in the walks below
end
local count = {
  active = redis.call('ZCARD', P .. 'leases'),
  parked = redis.call('ZCARD', P .. 'parked'),
  held = redis.call('HLEN', P .. 'held'),
}
if count.active > 0 and redis.call('ZSCORE', P .. 'leases', LEASE_PIN) then
  count.active = count.active - 1
end
count.ready = math.max(0, nkeys - count.active - count.parked - count.held)
local total = want == '' and nkeys or count[want]

local found = {} -- {key, depth}
local inspected = 0
if want == '' then
  local r = redis.call('ZREVRANGE', D, 0, top - 1, 'WITHSCORES')
  for i = 1, #r, 2 do
    if r[i] ~= LEASE_PIN then
      found[#found + 1] = {r[i], tonumber(r[i + 1])}
    end
  end
  inspected = total
elseif want ~= 'ready' and total <= limit then
  local ks
  if want == 'held' then
    ks = redis.call('HKEYS', P .. 'held')
  else
    ks = redis.call('ZRANGE', want == 'active' and P .. 'leases' or P .. 'parked', 0, -1)
  end
  for _, k in ipairs(ks) do
    if k ~= LEASE_PIN then
      found[#found + 1] = {k, tonumber(redis.call('ZSCORE', D, k) or '0')}
    end
  end
  table.sort(found, function(x, y)
    if x[2] ~= y[2] then
      return x[2] > y[2]
    end
    return x[1] < y[1]
  end)
  inspected = total
else
  -- From the deepest key down, keep those in the state.
  local start, page = 0, 200
  while #found < top and start < math.min(nkeys, limit) do
    local r = redis.call('ZREVRANGE', D, start, math.min(start + page, limit) - 1, 'WITHSCORES')
    for i = 1, #r, 2 do
      if #found < top and redis.call('HGET', P .. 'm:' .. r[i], 'st') == want then
        found[#found + 1] = {r[i], tonumber(r[i + 1])}
      end
    end
    start = start + page
  end
  -- Every key of the state was seen, unless the walk stopped at `limit`.
  inspected = (#found >= top or nkeys <= limit) and total or 0
end

local out = {total, inspected, now_ms()}
for i = 1, math.min(top, #found) do
  local key, depth = found[i][1], found[i][2]
  local meta = redis.call('HMGET', P .. 'm:' .. key, 'st', 'a', 'why', 'ha', 'err')
  local st = meta[1] or 'idle'
  local when, reason = -1, ''
  if st == 'active' then
    when = tonumber(redis.call('ZSCORE', P .. 'leases', key) or '-1')
    reason = meta[4] or ''
  elseif st == 'parked' then
    when = tonumber(redis.call('ZSCORE', P .. 'parked', key) or '-1')
  elseif st == 'held' then
    reason = meta[3] or ''
  end
  local n = #out
  out[n + 1] = key
  out[n + 2] = st
  out[n + 3] = depth
  out[n + 4] = tonumber(meta[2] or '0')
  out[n + 5] = when
  out[n + 6] = reason
  out[n + 7] = meta[5] or ''
end
return out
