-- reap: hand expired leases back (settle does this too, on every call).
-- KEYS[1] = shard prefix; ARGV: limit. Reply: the number reaped.
local n = reap(now_ms(), tonumber(ARGV[1]))
if n > 0 then
  unpin('leases')
  wake()
end
return n
