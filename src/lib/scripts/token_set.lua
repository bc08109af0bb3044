-- token_set: store a customer's API token (hookq token set C TOKEN). A
-- customer held because its token was missing or rejected resumes: the
-- customer leaves `hc`, and every key of it held for reason `no-token` or
-- `token-invalid` becomes ready again with its head job unchanged, the
-- key with the oldest head job first. Keys held for other reasons (an
-- operator's hold, a failure policy) stay held. Needs _prelude.lua.
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer, token
-- Reply: {released, reason}: the number of keys made ready, and the reason
-- the customer was held ('' when it was not).
local customer, token = ARGV[1], ARGV[2]
redis.call('HSET', P .. 'tok', customer, token)

local function for_token(why)
  return why == 'token-invalid' or why == 'no-token'
end

local reason = redis.call('HGET', P .. 'hc', customer) or ''
if for_token(reason) then
  redis.call('HDEL', P .. 'hc', customer)
end

local hk = P .. 'hk:' .. customer
local back = {}
for _, key in ipairs(redis.call('SMEMBERS', hk)) do
  local why = redis.call('HGET', P .. 'm:' .. key, 'why')
  if for_token(why) then
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
local released = 0
for i = #back, 1, -1 do
  local key = back[i][2]
  if reason ~= '' and not for_token(reason) then
    -- The customer is still held for another reason: the key stays held
    -- with it, and resumes when the customer is released.
    hold_key(key, customer, reason, 1)
  else
    redis.call('HDEL', P .. 'held', key)
    redis.call('SREM', hk, key)
    redis.call('HDEL', P .. 'm:' .. key, 'why', 'cw')
    make_ready(key, customer, true)
    released = released + 1
  end
end
if released > 0 then
  wake()
end
return {released, reason}
