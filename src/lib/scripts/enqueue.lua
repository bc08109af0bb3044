-- enqueue: append one job to its key, with dedup and the depth check, and
-- schedule the key if it was idle. One atomic step (G5, G9, G10).
-- KEYS[1] = shard prefix "{ns:S}:"
-- ARGV: customer, code, body, webhook_id ("" = none), max_depth (0 = none),
--       dedup_ttl_ms
-- Reply: {status, id, seq}: 0 stored, 1 duplicate (id of the first), 2 full.
local customer, code, body, whid = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local max_depth = tonumber(ARGV[5])
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
-- depth[key] = LLEN q (invariant of the index): counting the job in first
-- gives the depth check, and takes it back when the key is full.
local depth = tonumber(redis.call('ZINCRBY', P .. 'depth', '1', key)) - 1
if max_depth > 0 and depth >= max_depth then
  redis.call('ZINCRBY', P .. 'depth', '-1', key)
  stat('full')
  return {2, '', 0}
end

local t = redis.call('TIME')
local id = SHARD .. '-' .. string.format('%d', redis.call('INCR', P .. 'ids'))
local seq = redis.call('HINCRBY', P .. 'seq', key, '1')
-- Numbers formatted as integers (concatenation would print them as floats).
local len = redis.call('RPUSH', q, string.format('%s\n%d\n%s%s\n', id, seq, t[1],
                       string.sub('00000' .. t[2], -6, -4)) .. whid .. '\n' .. body)
redis.call('HINCRBY', P .. 'stats', 'accepted', '1')
if len ~= depth + 1 then
  redis.call('ZADD', P .. 'depth', len, key)
end
if dd then
  redis.call('SET', dd, id, 'PX', ARGV[6])
end

if len == 1 then
  -- The key was idle, so it has no meta yet: schedule it.
  redis.call('HSET', m, 'c', customer)
  if schedule(key, customer, false) == 'ready' then
    wake()
  end
end
return {0, id, seq}
