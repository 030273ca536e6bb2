-- wrk script: one machine-readable line at the end of a run, for run.sh.
-- Latencies are in microseconds; errors split as wrk counts them.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(("BENCH requests=%d duration_us=%d connect=%d read=%d " ..
    "write=%d timeout=%d status=%d p50_us=%d p99_us=%d max_us=%d\n"):format(
    summary.requests, summary.duration, e.connect, e.read, e.write,
    e.timeout, e.status, latency:percentile(50), latency:percentile(99),
    latency.max))
end
