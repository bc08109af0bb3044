-- keys: the deepest keys of one shard, by state (hookq keys, and the top
-- keys of hookq stats). Read-only. Every key with jobs is in exactly one of
-- the ready lists, `leases`, `parked` or `held` (invariant 1), so walking
-- them finds every key; at most `limit` keys are looked at, so the cost is
-- bounded: O(limit) reads plus a sort. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: state ('' = any, else ready|active|parked|held), top, limit
-- Reply: {total, inspected, now_ms, then 7 per key: key, state, depth, attempts,
--         when_ms (lease expiry or due time, -1 = none), reason (why held,
--         or the pending hold of an active key), last error}
-- where total is the number of keys in that state.
local want, top, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cand = {}
local total = 0

local function add(key, st, when)
  if #cand < limit then
    cand[#cand + 1] = {key, st, when}
  end
end

if want == '' or want == 'ready' then
  for _, c in ipairs(redis.call('LRANGE', P .. 'rc', 0, -1)) do
    local rk = P .. 'rk:' .. c
    local n = redis.call('LLEN', rk)
    total = total + n
    if #cand < limit then
      for _, key in ipairs(redis.call('LRANGE', rk, 0, limit - #cand - 1)) do
        add(key, 'ready', -1)
      end
    end
  end
end
for _, z in ipairs({{'active', 'leases'}, {'parked', 'parked'}}) do
  if want == '' or want == z[1] then
    total = total + redis.call('ZCARD', P .. z[2])
    if #cand < limit then
      local r = redis.call('ZRANGE', P .. z[2], 0, limit - #cand - 1, 'WITHSCORES')
      for i = 1, #r, 2 do
        add(r[i], z[1], tonumber(r[i + 1]))
      end
    end
  end
end
if want == '' or want == 'held' then
  total = total + redis.call('HLEN', P .. 'held')
  if #cand < limit then
    local cursor = '0'
    repeat
      local r = redis.call('HSCAN', P .. 'held', cursor, 'COUNT', 100)
      cursor = r[1]
      for i = 1, #r[2], 2 do
        add(r[2][i], 'held', -1)
      end
    until cursor == '0' or #cand >= limit
  end
end

for _, k in ipairs(cand) do
  k[4] = redis.call('LLEN', P .. 'q:' .. k[1])
end
table.sort(cand, function(x, y)
  if x[4] ~= y[4] then
    return x[4] > y[4]
  end
  return x[1] < y[1]
end)

local out = {total, #cand, now_ms()}
for i = 1, math.min(top, #cand) do
  local k = cand[i]
  local meta = redis.call('HMGET', P .. 'm:' .. k[1], 'a', 'why', 'ha', 'err')
  local reason = ''
  if k[2] == 'held' then
    reason = meta[2] or ''
  elseif k[2] == 'active' then
    reason = meta[3] or ''
  end
  local n = #out
  out[n + 1] = k[1]
  out[n + 2] = k[2]
  out[n + 3] = k[4]
  out[n + 4] = tonumber(meta[1] or '0')
  out[n + 5] = k[3]
  out[n + 6] = reason
  out[n + 7] = meta[4] or ''
end
return out
