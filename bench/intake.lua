-- wrk script for bench/intake.sh: POST a ~1 KiB webhook, one of 100
-- customers in turn, each with a unique webhook-id (as a sender would).
-- Every wrk thread runs its own copy of this script: setup() numbers them,
-- so their webhook-ids differ (math.random is not seeded per thread, and
-- equal ids would be answered as duplicates, which costs Redis far less).
local bodies = {}
local n = 0
local run = tostring(os.time())
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

function init(args)
  for k = 0, 99 do
    local head = string.format(
      '{"code":"post-create","data":{"customer_id":"cust-%03d","post_id":%d,"title":"', k, 1000 + k)
    bodies[k] = head .. string.rep("a", 1000 - #head) .. '"}}'
  end
  run = run .. "_" .. tostring(tid)
end

function request()
  n = n + 1
  local body = bodies[n % 100]
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["webhook-id"] = "msg_" .. run .. "_" .. n,
  }, body)
end
