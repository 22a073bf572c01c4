-- wrk script: the dashboard's order table, first page: authenticated
-- GET /api/orders?direction=desc&limit=50 (the newest 50 orders).
-- Environment:
--   OMS_TOKEN      admin bearer token
local token = os.getenv("OMS_TOKEN") or ""
local headers = { ["Authorization"] = "Bearer " .. token }

function request()
  return wrk.format("GET", "/api/orders?direction=desc&limit=50", headers)
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
