-- wrk script: GET /healthz, the daemon's cheapest request: without a token
-- it is the reference rate every HTTP figure of scripts/bench is divided
-- by. With OMS_TOKEN set, every request carries that bearer token, which
-- the daemon verifies and checks against the user's row: the difference
-- between the two rates is the cost of authentication.
local token = os.getenv("OMS_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
