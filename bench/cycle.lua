-- wrk script: the full cycle. Each claim's answer queues a complete-task for the same task; a thread
-- sends a pending completion before its next claim. Prints the summary as one JSON line.
local key = os.getenv("TASKCLAIM_BENCH_KEY")
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. key}
local pending = {}

request = function()
  local body = table.remove(pending)
  if body then
    return wrk.format("POST", "/functions/v1/complete-task", headers, body)
  end
  return wrk.format("POST", "/functions/v1/claim-next-task", headers, "{}")
end

response = function(status, hdrs, body)
  if status == 200 then
    local task_id = string.match(body, '"task_id":"([^"]+)","params"')
    local worker_id = string.match(body, '"worker_id":"([^"]+)"')
    local attempt = string.match(body, '"attempt":(%d+)')
    if task_id and worker_id and attempt then
      table.insert(pending, string.format('{"task_id":"%s","worker_id":"%s","attempt":%s}',
        task_id, worker_id, attempt))
    end
  end
end

done = function(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f, ' ..
    '"non_2xx": %d, "socket_errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    summary.errors.status, summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout))
end
