-- wrk script for bench/dedup.sh: POST small webhooks, one of 100 customers
-- in turn, each with a new webhook-id, until this thread has had LIMIT
-- answers (wrk -s dedup.lua URL -- LIMIT RUN). Each thread numbers its own
-- ids (setup() gives it its number), so no two requests share one. Answers
-- other than 202 are counted and printed at the end.
local threads = {}
local n, answers = 0, 0
bad = 0 -- global: done() reads it from each thread
local limit, run = 0, ""
local bodies = {}

function setup(thread)
  threads[#threads + 1] = thread
  thread:set("tid", #threads)
end

function init(args)
  limit = tonumber(args[1])
  run = args[2] .. "_" .. tostring(tid)
  for k = 0, 99 do
    bodies[k] = string.format('{"code":"post-create","data":{"customer_id":"c%02d","post_id":%d}}', k, k)
  end
end

function request()
  n = n + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["webhook-id"] = "msg_" .. run .. "_" .. n,
  }, bodies[n % 100])
end

function response(status)
  answers = answers + 1
  if status ~= 202 then
    bad = bad + 1
  end
  if answers >= limit then
    wrk.thread:stop()
  end
end

function done()
  local b = 0
  for _, t in ipairs(threads) do
    b = b + (t:get("bad") or 0)
  end
  io.write(string.format("dedup.lua: answers other than 202: %d\n", b))
end
