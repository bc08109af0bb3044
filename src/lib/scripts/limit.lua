-- limit: the API rate limiter (G7), one atomic step per decision.
-- KEYS[1] = P, the customer's shard prefix "{ns:S}:".
--
-- State: P rl:<h>:<endpoint>, a ZSET of the last R calls of that (token,
-- endpoint): member = call id, score = the call's time (ms, Redis TIME);
-- h is the first 16 hex digits of sha1(token). A call is granted at `now`
-- only if fewer than R recorded calls lie within the last W + margin ms,
-- i.e. the set holds fewer than R calls or its R-th latest is at or before
-- now - W - margin. A grant is recorded as pending at now + W (the latest
-- its request may leave, as far as the limiter knows) and is corrected to
-- the time the request really left by "sent", which the worker calls just
-- before the request goes on the wire. So the recorded time of every call
-- is at or after its departure, and any R+1 calls in a row leave more
-- than W + margin apart: strict, with no burst at window boundaries, even
-- when a worker is slow between the grant and the send.
-- See docs/queue-semantics.md, "Rate limiter".
--
-- ARGV[1] = "take": key, fence, customer, endpoint, R, W_ms, margin_ms, id
--   Checks that the job's lease is still current (m:<key> st = active and
--   tok = fence), reads the customer's token from P tok, and grants or not.
--   {1, now, token}  granted: recorded as call `id`; make the call now
--   {0, wait_ms}     no budget: the earliest grant is now + wait_ms
--   {-1}             the lease is no longer ours: nothing recorded
--   {-2}             the customer has no token: nothing recorded
--
-- ARGV[1] = "sent": token, endpoint, id, R, W_ms, margin_ms
--   Call `id` leaves now: its time becomes now (if it is still recorded).
--   {1, now}
--
-- ARGV[1] = "block": token, endpoint, delay_ms, R, W_ms, margin_ms
--   The API answered 429: no grant for that (token, endpoint) before
--   now + delay_ms. R calls are recorded at no earlier than
--   now + delay_ms - W - margin, so the next grant is due at now + delay_ms.
--   {1, until_ms}
-- (P, now_ms and stat come from _prelude.lua.)
local now = now_ms()

local function rl_key(token, endpoint)
  return P .. 'rl:' .. string.sub(redis.sha1hex(token), 1, 16) .. ':' ..
         endpoint
end

-- The set matters while its latest time is within W + margin.
local function expire(rl, span)
  local top = redis.call('ZREVRANGE', rl, 0, 0, 'WITHSCORES')
  local latest = tonumber(top[2]) or now
  if latest < now then latest = now end
  redis.call('PEXPIRE', rl, latest - now + span + 1)
end

local op = ARGV[1]
if op == 'take' then
  local key, fence, customer, endpoint = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local R, W = tonumber(ARGV[6]), tonumber(ARGV[7])
  local span = W + tonumber(ARGV[8])
  local m = redis.call('HMGET', P .. 'm:' .. key, 'st', 'tok')
  if m[1] ~= 'active' or m[2] ~= fence then
    return {-1}
  end
  local token = redis.call('HGET', P .. 'tok', customer)
  if not token or token == '' then
    return {-2}
  end
  local rl = rl_key(token, endpoint)
  local n = redis.call('ZCARD', rl)
  if n >= R then
    local kth = redis.call('ZREVRANGE', rl, R - 1, R - 1, 'WITHSCORES')
    local due = tonumber(kth[2]) + span
    if due > now then
      stat('api_waits')
      return {0, due - now}
    end
  end
  redis.call('ZADD', rl, now + W, ARGV[9])
  if n + 1 > R then
    redis.call('ZREMRANGEBYRANK', rl, 0, n - R)
  end
  expire(rl, span)
  stat('api_calls')
  return {1, now, token}
elseif op == 'sent' then
  local rl = rl_key(ARGV[2], ARGV[3])
  if redis.call('ZADD', rl, 'XX', 'CH', now, ARGV[4]) == 1 then
    expire(rl, tonumber(ARGV[6]) + tonumber(ARGV[7]))
  end
  return {1, now}
elseif op == 'block' then
  local rl = rl_key(ARGV[2], ARGV[3])
  local delay, R = tonumber(ARGV[4]), tonumber(ARGV[5])
  local span = tonumber(ARGV[6]) + tonumber(ARGV[7])
  local floor = now + delay - span
  local calls = redis.call('ZRANGE', rl, 0, -1, 'WITHSCORES')
  for i = 1, #calls, 2 do
    if tonumber(calls[i + 1]) < floor then
      redis.call('ZADD', rl, floor, calls[i])
    end
  end
  for i = 1, R - #calls / 2 do
    redis.call('ZADD', rl, floor, '429:' .. now .. ':' .. i)
  end
  local n = redis.call('ZCARD', rl)
  if n > R then
    redis.call('ZREMRANGEBYRANK', rl, 0, n - R - 1)
  end
  expire(rl, span)
  stat('api_429')
  local kth = redis.call('ZREVRANGE', rl, R - 1, R - 1, 'WITHSCORES')
  return {1, tonumber(kth[2]) + span}
end
return redis.error_reply('limit: unknown op ' .. tostring(op))
