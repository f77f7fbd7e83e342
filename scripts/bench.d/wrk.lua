-- wrk script of scripts/bench. Prints one line the script parses:
--   RESULT rps=... p50=... p99=... p999=... non2xx=... socket_errors=...  (latencies in ms)
-- With BENCH_MIX=N in the environment, every Nth request goes to /inc and the
-- others to / (N=10: the 90/10 GET//inc mix).
local mix = tonumber(os.getenv("BENCH_MIX") or "")

if mix then
  local get, inc, n = nil, nil, 0
  function init(args)
    get = wrk.format("GET", "/")
    inc = wrk.format("GET", "/inc")
  end
  function request()
    n = n + 1
    if n % mix == 0 then return inc end
    return get
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT rps=%.1f p50=%.3f p99=%.3f p999=%.3f non2xx=%d socket_errors=%d\n",
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency:percentile(99.9) / 1000,
    e.status, e.connect + e.read + e.write + e.timeout))
end
