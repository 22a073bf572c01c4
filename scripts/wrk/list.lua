-- wrk script: authenticated GET /api/orders?status=pending&limit=50 from a
-- random cursor, i.e. a random page of the status-filtered order list.
-- Environment:
--   OMS_TOKEN      admin bearer token
--   OMS_ORDERS     cursors are drawn from 0..OMS_ORDERS
--   OMS_STATUS     the status filter, default pending
local token = os.getenv("OMS_TOKEN") or ""
local orders = tonumber(os.getenv("OMS_ORDERS") or "1000")
local status = os.getenv("OMS_STATUS") or "pending"
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
  local after = math.random(0, orders)
  return wrk.format("GET",
    string.format("/api/orders?status=%s&limit=50&after=%d", status, after), headers)
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
