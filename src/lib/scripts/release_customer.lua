-- release_customer: an operator releases a held customer (hookq release
-- --customer C): the customer leaves `hc`, and every key held with it
-- (m.cw = 1) becomes ready again, each with its head job unchanged. Keys held
-- on their own (an operator's hold, a failure policy) stay held.
-- Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer
-- Reply: {released, reason}: the number of keys made ready, and the reason
-- the customer was held ('' when it was not).
local customer = ARGV[1]
local reason = redis.call('HGET', P .. 'hc', customer) or ''
redis.call('HDEL', P .. 'hc', customer)

-- Released keys go to the front of the customer's ready keys, ordered by
-- their head job's id (the shard's enqueue counter), so the customer's
-- oldest waiting job runs first.
local hk = P .. 'hk:' .. customer
local back = {}
for _, key in ipairs(redis.call('SMEMBERS', hk)) do
  if redis.call('HGET', P .. 'm:' .. key, 'cw') == '1' then
    local head = redis.call('LINDEX', P .. 'q:' .. key, 0) or ''
    back[#back + 1] = {tonumber(string.match(head, '^%d+%-(%d+)')) or 0, key}
  end
end
table.sort(back, function(x, y)
  if x[1] ~= y[1] then
    return x[1] < y[1]
  end
  return x[2] < y[2]
end)
for i = #back, 1, -1 do
  local key = back[i][2]
  redis.call('HDEL', P .. 'held', key)
  redis.call('SREM', hk, key)
  redis.call('HDEL', P .. 'm:' .. key, 'why', 'cw')
  make_ready(key, customer, true)
end
if #back > 0 then
  wake()
end
return {#back, reason}
