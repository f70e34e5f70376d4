-- wrk script: GET /v1/users/{random demo user}/recommendations?k=10
-- USERS (env) = number of demo users (ids U00001..); KEY (env) = API key, if any;
-- SLOT (env) = slot to ask for (an experiment may cover it).
local users = tonumber(os.getenv("USERS") or "5000")
local key = os.getenv("KEY")
local slot = os.getenv("SLOT")
math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
request = function()
  local u = string.format("U%05d", math.random(1, users))
  local headers = {}
  if key then headers["X-Api-Key"] = key end
  local path = "/v1/users/" .. u .. "/recommendations?k=10"
  if slot then path = path .. "&slot=" .. slot end
  return wrk.format("GET", path, headers)
end
done = function(summary, latency, requests)
  io.write(string.format(
    "{\"requests\": %d, \"seconds\": %.2f, \"rps\": %.0f, \"errors\": %d, \"non_2xx\": %d, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"p999_ms\": %.3f, \"max_ms\": %.3f}\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000))
end
