-- workers: the live worker processes (hookq workers, GET /api/workers).
-- Read-only: a process is listed when its last beat (worker_beat) is at
-- most ARGV[1] ms old by Redis's clock.
-- KEYS[1] = the registry's prefix "{ns:workers}:"
-- ARGV: ttl_ms
-- Reply: {now_ms, {host, pid, version, started, loops, in_flight,
--         last_seen}, ...} ordered by id (host, then pid).
local now = now_ms()
local since = now - tonumber(ARGV[1])
local out = {now}
local ids = redis.call('ZRANGEBYSCORE', P .. 'workers', string.format('%d', since), '+inf')
table.sort(ids)
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', P .. 'worker:' .. id, 'host', 'pid', 'version',
                       'started', 'loops', 'in_flight', 'last_seen')
  if f[1] and tonumber(f[7]) and tonumber(f[7]) >= since then
    out[#out + 1] = f
  end
end
return out
