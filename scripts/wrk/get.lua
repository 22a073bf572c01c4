-- wrk script: authenticated GET /api/orders/{id} with random ids.
-- Environment:
--   OMS_TOKEN      admin bearer token
--   OMS_ORDERS     ids are drawn from 1..OMS_ORDERS (orders that exist)
local token = os.getenv("OMS_TOKEN") or ""
local orders = tonumber(os.getenv("OMS_ORDERS") or "1000")
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  math.randomseed(os.time() * 1000 + thread_id)
end

local headers = { ["Authorization"] = "Bearer " .. token }

function request()
  return wrk.format("GET", "/api/orders/" .. math.random(1, orders), headers)
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
