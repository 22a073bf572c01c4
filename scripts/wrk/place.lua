-- wrk script: authenticated POST /api/orders, 3-line orders, a unique
-- Idempotency-Key per request. Environment:
--   OMS_TOKEN      admin bearer token
--   OMS_CUSTOMERS  number of customers (ids 1..N), default 1000
--   OMS_SKUS       number of SKUs named SKU-001.., default 200
--   OMS_RUN        a prefix that makes keys unique across runs
local token = os.getenv("OMS_TOKEN") or ""
local customers = tonumber(os.getenv("OMS_CUSTOMERS") or "1000")
local skus = tonumber(os.getenv("OMS_SKUS") or "200")
local run = os.getenv("OMS_RUN") or tostring(os.time())
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local counter = 0

function request()
  counter = counter + 1
  local n = counter * 7919 + thread_id * 104729
  local sku = function(k) return string.format("SKU-%03d", (n + k * 37) % skus + 1) end
  local body = string.format(
    '{"customer_id":%d,"items":[{"sku":"%s","quantity":1},{"sku":"%s","quantity":1},{"sku":"%s","quantity":2}]}',
    n % customers + 1, sku(0), sku(1), sku(2))
  local headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = string.format("%s-%d-%d", run, thread_id, counter),
  }
  return wrk.format("POST", "/api/orders", headers, body)
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
