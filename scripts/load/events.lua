-- wrk script: POST /v1/events with batches of BATCH (env, default 100) new view events
-- (unique ids, so every event is stored: durable writes, not duplicates). NEW_ITEMS=1 names
-- an item the catalog has never seen in every event (issue 18, item 5: each one must be
-- added to the catalog incrementally, not by reloading it).
local batch = tonumber(os.getenv("BATCH") or "100")
local users = tonumber(os.getenv("USERS") or "5000")
local items = tonumber(os.getenv("ITEMS") or "2000")
local key = os.getenv("KEY")
local new_items = os.getenv("NEW_ITEMS") == "1"
local thread_id = 0
local counter = 0
setup = function(thread)
  thread:set("thread_id", thread_id)
  thread_id = thread_id + 1
end
request = function()
  local rows = {}
  for i = 1, batch do
    counter = counter + 1
    local item = new_items and string.format("NEW-%d-%d-%d", thread_id, os.time(), counter)
      or string.format("SKU-%05d", math.random(1, items))
    rows[i] = string.format(
      '{"id":"load-%d-%d-%d","user":"U%05d","item":"%s","kind":"view","ts":%d}',
      thread_id, os.time(), counter, math.random(1, users), item, 1790000000000 + counter)
  end
  local headers = {["Content-Type"] = "application/json"}
  if key then headers["X-Api-Key"] = key end
  return wrk.format("POST", "/v1/events", headers, "[" .. table.concat(rows, ",") .. "]")
end
done = function(summary, latency, requests)
  io.write(string.format(
    "{\"requests\": %d, \"seconds\": %.2f, \"events_per_second\": %.0f, \"errors\": %d, \"non_2xx\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f}\n",
    summary.requests, summary.duration / 1e6, summary.requests * batch / (summary.duration / 1e6),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
