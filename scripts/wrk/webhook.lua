-- wrk script: POST /api/payments/webhook, each request a distinct signed
-- payment.captured for a PENDING order (written beforehand by
-- `oms-bench webhook-events`). Environment:
--   OMS_EVENTS  the prefix of the event files: thread N reads PREFIX.N,
--               lines of SIGNATURE<TAB>EVENT-ID<TAB>BODY
-- A thread that runs out of lines starts its file again (those deliveries
-- are duplicates); done() reports how many lines were reused.
local prefix = os.getenv("OMS_EVENTS") or "events"
local threads = {}

function setup(thread)
  thread:set("thread_id", #threads + 1)
  table.insert(threads, thread)
end

local file = nil
reused = 0

function init(args)
  file = assert(io.open(prefix .. "." .. thread_id, "r"))
end

local wrapped = false

function request()
  local line = file:read("*l")
  if line == nil then
    file:seek("set", 0)
    line = file:read("*l")
    wrapped = true
  end
  if wrapped then
    reused = reused + 1
  end
  if line == nil then
    return wrk.format("POST", "/api/payments/webhook", {}, "")
  end
  local signature, event_id, body = line:match("^(%x+)\t([^\t]+)\t(.*)$")
  local headers = {
    ["Content-Type"] = "application/json",
    ["X-Razorpay-Signature"] = signature,
    ["X-Razorpay-Event-Id"] = event_id,
  }
  return wrk.format("POST", "/api/payments/webhook", headers, body)
end

function done(summary, latency, requests)
  local total = 0
  for _, thread in ipairs(threads) do
    total = total + (thread:get("reused") or 0)
  end
  io.write(string.format("p50_ms=%.2f p99_ms=%.2f max_ms=%.2f reused=%d\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, total))
end
