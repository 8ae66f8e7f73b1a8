-- The requests of the load benchmark, by SCENARIO:
--   eta        one ETA a request (Lille to Marseille by Lyon, departures spread over a week);
--              FACTORS=1 asks for the strongest factors too
--   batch      a plan's batch of BATCH (100) trips across France
--   positions  telematics boxes posting PINGS (10) fixes a request, each of another vehicle
--              among VEHICLES (1,000), one second apart per vehicle, none in the future
--   mixed      eight ETAs, one batch and one positions request in ten
-- At the end, one JSON line with what wrk measured.
local key = os.getenv("ETAPE_KEY")
local scenario = os.getenv("SCENARIO") or "eta"
local factors = os.getenv("FACTORS") == "1"
local batch_size = tonumber(os.getenv("BATCH") or "100")
local per_request = tonumber(os.getenv("PINGS") or "10")
local vehicles = tonumber(os.getenv("VEHICLES") or "1000")
local json = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json" }
local ndjson = { ["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/x-ndjson" }

local function stamp(seconds)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", seconds)
end

local classes = { "articulated", "rigid", "van" }
local etas = {}
local batch
local first_ping = os.time() - 6 * 3600
local pings = 0
local served = 0

function init(args)
  local start = os.time() + 3600
  for i = 0, 99 do
    etas[i] = string.format(
      '{"origin":{"lat":50.63,"lon":3.06},"destination":{"lat":43.30,"lon":5.37},' ..
      '"departure_time":"%s","vehicle_class":"%s",' ..
      '"stops":[{"id":"lyon","lat":45.76,"lon":4.84,"dwell_minutes":45}]%s}',
      stamp(start + i * 6037), classes[i % 3 + 1], factors and ',"factors":true' or '')
  end
  local items = {}
  for i = 0, batch_size - 1 do
    items[#items + 1] = string.format(
      '{"origin":{"lat":%.3f,"lon":%.3f},"destination":{"lat":%.3f,"lon":%.3f},' ..
      '"departure_time":"%s","vehicle_class":"%s"}',
      43.3 + i % 7, 0.5 + i % 5, 50.6 - i % 6, 5.3 - i % 4, stamp(start + i * 600),
      classes[i % 3 + 1])
  end
  batch = '{"requests":[' .. table.concat(items, ",") .. ']}'
end

-- Each wrk thread has its own vehicles, so that no two threads post the same fix.
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  threads[#threads + 1] = thread
end

-- CHECK_DEGRADED=1: count ETA answers that do not name a missing feed (with every feed
-- down, each must).
if os.getenv("CHECK_DEGRADED") == "1" then
  undegraded = 0
  function response(status, headers, body)
    if status == 200 and not string.find(body, '"degraded":["', 1, true) then
      undegraded = undegraded + 1
    end
  end
end

local function positions()
  local lines = {}
  for _ = 1, per_request do
    local vehicle = pings % vehicles
    local second = math.floor(pings / vehicles)
    pings = pings + 1
    lines[#lines + 1] = string.format(
      '{"vehicle_id":"LOAD-%s-%d","timestamp":"%s","lat":%.5f,"lon":%.5f,"speed_kmh":80}',
      tostring(id or 0), vehicle, stamp(first_ping + second),
      45.0 + vehicle / 1000 + second * 0.0002, 4.0 + second * 0.0002)
  end
  return wrk.format("POST", "/v1/positions", ndjson, table.concat(lines, "\n"))
end

function request()
  served = served + 1
  local kind = scenario
  if scenario == "mixed" then
    local slot = served % 10
    kind = slot == 0 and "batch" or slot == 1 and "positions" or "eta"
  end
  if kind == "batch" then
    return wrk.format("POST", "/v1/eta/batch", json, batch)
  elseif kind == "positions" then
    return positions()
  end
  return wrk.format("POST", "/v1/eta", json, etas[served % 100])
end

function done(summary, latency, requests)
  local seconds = summary.duration / 1e6
  local errors = summary.errors
  local unflagged = 0
  for _, thread in ipairs(threads) do
    unflagged = unflagged + (thread:get("undegraded") or 0)
  end
  io.write(string.format(
    '{"requests": %d, "seconds": %.2f, "rps": %.1f, "p50_ms": %.3f, "p99_ms": %.3f, ' ..
    '"p999_ms": %.3f, "max_ms": %.3f, "non_2xx": %d, "socket_errors": %d, "timeouts": %d, ' ..
    '"undegraded": %d}\n',
    summary.requests, seconds, summary.requests / seconds,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.max / 1000,
    errors.status, errors.connect + errors.read + errors.write, errors.timeout, unflagged))
end
