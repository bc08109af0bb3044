-- wrk script for bench/intake.sh: POST a ~1 KiB webhook, one of 100
-- customers in turn, each with a unique webhook-id (as a sender would).
local bodies = {}
local n = 0
local run = tostring(os.time())

function init(args)
  for k = 0, 99 do
    local head = string.format(
      '{"code":"post-create","data":{"customer_id":"cust-%03d","post_id":%d,"title":"', k, 1000 + k)
    bodies[k] = head .. string.rep("a", 1000 - #head) .. '"}}'
  end
  run = run .. "_" .. tostring(math.random(1, 1000000))
end

function request()
  n = n + 1
  local body = bodies[n % 100]
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["webhook-id"] = "msg_" .. run .. "_" .. n,
  }, body)
end
