-- enqueue: append one job to its key, with dedup and the depth check, and
-- schedule the key if it was idle. One atomic step (G5, G9, G10).
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer, code, body, webhook_id ("" = none), max_depth (0 = none),
--       dedup_ttl_ms
-- Reply: {status, id, seq}: 0 stored, 1 duplicate (id of the first), 2 full.
local customer, code, body, whid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_depth, dedup_ttl = tonumber(ARGV[5]), tonumber(ARGV[6])
local key = customer .. ':' .. code
local q, m = P .. 'q:' .. key, P .. 'm:' .. key

local dd
if whid ~= '' then
  dd = P .. 'dd:' .. whid
  local first = redis.call('GET', dd)
  if first then
    stat('duplicate')
    return {1, first, 0}
  end
end
local depth = redis.call('LLEN', q)
if max_depth > 0 and depth >= max_depth then
  stat('full')
  return {2, '', 0}
end

local now = now_ms()
local id = SHARD .. '-' .. redis.call('INCR', P .. 'ids')
local seq = redis.call('HINCRBY', P .. 'seq', key, 1)
redis.call('RPUSH', q, id .. '\n' .. seq .. '\n' .. now .. '\n' .. whid .. '\n' .. body)
stat('accepted')
redis.call('INCR', P .. 'jobs')
redis.call('ZINCRBY', P .. 'depth', 1, key)
if dd then
  redis.call('SET', dd, id, 'PX', dedup_ttl)
end

if depth == 0 then
  -- The key was idle, so it has no meta yet: schedule it.
  redis.call('HSET', m, 'c', customer)
  if schedule(key, customer, false) == 'ready' then
    wake()
  end
end
return {0, id, seq}
