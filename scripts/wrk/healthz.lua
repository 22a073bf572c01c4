-- wrk script: GET /healthz (no token), the daemon's cheapest request: the
-- reference rate every HTTP figure of scripts/bench is divided by.
function done(summary, latency, requests)
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
