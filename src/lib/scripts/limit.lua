-- limit: the API rate limiter (G7), one atomic step per decision.
-- KEYS[1] = P, the customer's shard prefix "{ns:S}:".
--
-- State: P rl:<h>:<endpoint>, a ZSET of the last R calls of that (token,
-- endpoint); h is the first 16 hex digits of sha1(token). A call that has
-- left is member "s:<id>" with score = the time it left (ms, Redis TIME).
-- A call granted but not yet known to have left is member "p:<at>:<id>",
-- due to leave at <at>, with score <at> + W: the latest it may leave as far
-- as the limiter knows. A call is granted at `at` only if the R-th latest
-- score is at or before at - W - margin (or fewer than R calls are known).
-- The worker reports each call with "sent" just before its request goes on
-- the wire, which turns "p:" into "s:" with score = that moment. So every
-- recorded score is at or after its call left, and any R+1 calls in a row
-- leave more than W + margin apart: strict, no burst at window boundaries,
-- and still strict when a worker stalls between grant and send (for up to
-- W; longer, only if its "sent" is late too). docs/queue-semantics.md,
-- "Rate limiter", says more.
--
-- ARGV[1] = "take": key, fence, customer, endpoint, R, W_ms, margin_ms, id,
--                   lookahead_ms
--   Checks that the job's lease is still current (m:<key> st = active and
--   tok = fence), reads the customer's token from P tok, and grants or not.
--   {1, at, token, wait}  granted call `id`, to be made at `at`, which is
--                         now (wait = 0) or, when the budget opens within
--                         lookahead_ms, that moment (reserved; wait > 0)
--   {0, wait_ms}     no budget: the earliest grant is expected in wait_ms
--                    (counting calls not yet sent as leaving on time)
--   {-1}             the lease is no longer ours: nothing recorded
--   {-2}             the customer has no token: nothing recorded
--
-- ARGV[1] = "sent": token, endpoint, id, at, W_ms, margin_ms
--   Call `id` (granted at `at`) leaves now.  {1, now}
--
-- ARGV[1] = "rejected": customer, token
--   The API answered 401/403 to `token`: remember it (P tokbad), so that
--   settle's hold for "token-invalid" (of the key, or of the customer)
--   applies only while that token is still the customer's (a `hookq token
--   set` may overtake it).
--   {1}
--
-- ARGV[1] = "block": token, endpoint, delay_ms, R, W_ms, margin_ms
--   The API answered 429: no grant for that (token, endpoint) before
--   now + delay_ms. R calls are recorded at no earlier than
--   now + delay_ms - W - margin, so the next grant is due at now + delay_ms.
--   {1, until_ms}
--
-- ARGV[1] = "grant": by, who, endpoint, R, W_ms, margin_ms, id, lookahead_ms
--   POST /api/limit: the application's own call, counted in the same log
--   as hookq's fetches. `by` is "customer" (who = the customer, its token
--   read from P tok) or "token" (who = the token). The call is granted for
--   now, or, when the budget opens within lookahead_ms, reserved for that
--   moment `at` as a fetch's is. Either way it is pending ("p:<at>:<id>")
--   until the admin has written its answer and reports it with "sent", as
--   a worker does for a fetch. The application calls at once, and the
--   margin is the slack for the answer's way back.
--   {1, at, wait, token}  granted for at = now + wait
--   {0, wait_ms, expect}  no budget: strictly none for wait_ms; expect_ms
--                         counts calls not yet sent as leaving on time
--   {-2}                  the customer has no token
--
-- ARGV[1] = "refresh": customer, period_ms
--   [api] token_command may run for the customer: at most once per period
--   across all workers (P tokcmd:<customer> lives that long).
--   {1} run it   {0} it ran less than a period ago
-- (P, now_ms and stat come from _prelude.lua.)
local now = now_ms()

local function rl_key(token, endpoint)
  return P .. 'rl:' .. string.sub(redis.sha1hex(token), 1, 16) .. ':' ..
         endpoint
end

-- The set matters while its latest score is within W + margin.
local function expire(rl, span)
  local top = redis.call('ZREVRANGE', rl, 0, 0, 'WITHSCORES')
  local latest = tonumber(top[2]) or now
  if latest < now then latest = now end
  redis.call('PEXPIRE', rl, latest - now + span + 1)
end

-- The k-th largest of a list of numbers (k >= 1), or nil.
local function kth(list, k)
  if #list < k then return nil end
  table.sort(list, function(a, b) return a > b end)
  return list[k]
end

-- The one slot rule of G7, for fetches ("take") and /api/limit ("grant"):
-- the call may go at the earliest moment when fewer than R calls of the set
-- fall within the last W + margin. When that moment is within `lookahead`,
-- the call is reserved there as pending ('p:<at>:<id>', scored at + W) and
-- its time is returned; else nil, the wait to that moment, and the wait
-- expected once the pending calls are sent (their planned times).
local function reserve(rl, R, W, span, lookahead, id)
  local calls = redis.call('ZRANGE', rl, 0, -1, 'WITHSCORES')
  local strict, hint = {}, {}
  for i = 1, #calls, 2 do
    local score = tonumber(calls[i + 1])
    strict[#strict + 1] = score
    hint[#hint + 1] = tonumber(string.match(calls[i], '^p:(%d+):')) or score
  end
  local at = now
  local due = kth(strict, R)
  if due and due + span > now then
    if due + span - now > lookahead then
      return nil, due + span - now, kth(hint, R) + span - now
    end
    at = due + span
  end
  redis.call('ZADD', rl, at + W, 'p:' .. at .. ':' .. id)
  local n = #strict + 1
  if n > R then
    redis.call('ZREMRANGEBYRANK', rl, 0, n - R - 1)
  end
  expire(rl, span)
  return at
end

local op = ARGV[1]
if op == 'take' then
  local key, fence, customer, endpoint = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
  local R, W = tonumber(ARGV[6]), tonumber(ARGV[7])
  local span = W + tonumber(ARGV[8])
  local id, lookahead = ARGV[9], tonumber(ARGV[10]) or 0
  local m = redis.call('HMGET', P .. 'm:' .. key, 'st', 'tok')
  if m[1] ~= 'active' or m[2] ~= fence then
    return {-1}
  end
  local token = redis.call('HGET', P .. 'tok', customer)
  if not token or token == '' then
    return {-2}
  end
  local at, _, expect = reserve(rl_key(token, endpoint), R, W, span, lookahead, id)
  if not at then
    stat('api_waits')
    if expect < 10 then expect = 10 end
    return {0, expect}
  end
  stat('api_calls')
  return {1, at, token, at - now}
elseif op == 'grant' then
  local token = ARGV[3]
  if ARGV[2] == 'customer' then
    token = redis.call('HGET', P .. 'tok', ARGV[3])
    if not token or token == '' then
      return {-2}
    end
  end
  local endpoint, R, W = ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
  local span = W + tonumber(ARGV[7])
  -- Pending until the admin has written its answer and reports it with
  -- "sent" (a busy loop may write it a while after this decision).
  local at, wait, expect = reserve(rl_key(token, endpoint), R, W, span,
                                   tonumber(ARGV[9]) or 0, ARGV[8])
  if not at then
    if expect < 1 then expect = 1 end
    return {0, wait, expect}
  end
  return {1, at, at - now, token}
elseif op == 'refresh' then
  local ok = redis.call('SET', P .. 'tokcmd:' .. ARGV[2], now, 'NX', 'PX',
                        tonumber(ARGV[3]))
  return {ok and 1 or 0}
elseif op == 'sent' then
  local rl = rl_key(ARGV[2], ARGV[3])
  if redis.call('ZREM', rl, 'p:' .. ARGV[5] .. ':' .. ARGV[4]) == 1 then
    redis.call('ZADD', rl, now, 's:' .. ARGV[4])
    expire(rl, tonumber(ARGV[6]) + tonumber(ARGV[7]))
  end
  return {1, now}
elseif op == 'rejected' then
  redis.call('HSET', P .. 'tokbad', ARGV[2], string.sub(redis.sha1hex(ARGV[3]), 1, 16))
  return {1}
elseif op == 'block' then
  local rl = rl_key(ARGV[2], ARGV[3])
  local delay, R = tonumber(ARGV[4]), tonumber(ARGV[5])
  local span = tonumber(ARGV[6]) + tonumber(ARGV[7])
  local floor = now + delay - span
  local calls = redis.call('ZRANGE', rl, 0, -1, 'WITHSCORES')
  for i = 1, #calls, 2 do
    local member, score = calls[i], tonumber(calls[i + 1])
    if string.sub(member, 1, 2) == 'p:' then
      -- A 429 answers a call that has left: count it as sent, late.
      redis.call('ZREM', rl, member)
      member = 's:' .. string.match(member, '^p:%d+:(.*)$')
      if score < floor then score = floor end
      redis.call('ZADD', rl, score, member)
    elseif score < floor then
      redis.call('ZADD', rl, floor, member)
    end
  end
  for i = 1, R - #calls / 2 do
    redis.call('ZADD', rl, floor, 's:429:' .. now .. ':' .. i)
  end
  local n = redis.call('ZCARD', rl)
  if n > R then
    redis.call('ZREMRANGEBYRANK', rl, 0, n - R - 1)
  end
  expire(rl, span)
  stat('api_429')
  local k = redis.call('ZREVRANGE', rl, R - 1, R - 1, 'WITHSCORES')
  return {1, tonumber(k[2]) + span}
end
return redis.error_reply('limit: unknown op ' .. tostring(op))
