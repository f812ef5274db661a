-- wrk script of isolane's benchmark suite (bench/wrk.ts runs it).
--
--   wrk -t T -c C -d D -s bench/wrk/report.lua URL -- BODY_FILE CONTENT_TYPE MAX_REQUESTS [HEADER ...]
--
-- POSTs the bytes of BODY_FILE with CONTENT_TYPE (and each extra "Name: value" HEADER) on every request,
-- ends the run once a thread has its share of MAX_REQUESTS answers (0: no bound; wrk's -d bounds the time),
-- counts answers by HTTP status, and prints one line "WRK_JSON {...}" at the end with the summary, the
-- latency percentiles (microseconds) and the status counts.
--
-- Each wrk thread runs its own Lua state: the counters below are per thread, and done() collects them through
-- the thread objects that setup() keeps (thread:get), as wrk's SCRIPTING notes describe.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local statuses = {}
local answered = 0
local limit = 0
local pid = nil

function init(args)
  local path, contentType, maxRequests = args[1], args[2], tonumber(args[3] or "0")
  local file = assert(io.open(path, "rb"), "cannot open body file " .. tostring(path))
  local body = file:read("*a")
  file:close()
  wrk.method = "POST"
  wrk.body = body
  wrk.headers["Content-Type"] = contentType or "application/json"
  for i = 4, #args do
    local name, value = string.match(args[i], "^([^:]+):%s*(.*)$")
    if name then wrk.headers[name] = value end
  end
  -- wrk gives init() no thread count; bench/wrk.ts passes the per-thread share in the environment.
  local share = tonumber(os.getenv("WRK_THREAD_SHARE") or "0")
  if maxRequests > 0 and share and share > 0 then
    limit = share
    -- A thread that stops alone leaves wrk sleeping until -d ends, and its rate wrong; SIGINT makes wrk stop
    -- every thread and report the time actually run (wrk handles SIGINT by ending the run).
    local stat = assert(io.open("/proc/self/stat", "r"))
    pid = tonumber(string.match(stat:read("*l"), "^(%d+)"))
    stat:close()
  end
  -- Globals are what thread:get can read from done().
  _G.statuses = statuses
  _G.answered = 0
end

function response(status, headers, body)
  local key = tostring(status)
  statuses[key] = (statuses[key] or 0) + 1
  answered = answered + 1
  _G.answered = answered
  -- Sent again every 50 answers past the bound, in case a signal was lost (seen once in CI: the run went on to -d).
  if limit > 0 and answered >= limit and (answered - limit) % 50 == 0 and pid then
    -- Not os.execute: system() ignores SIGINT in wrk while the kill runs, so the signal would be lost.
    local kill = io.popen("kill -INT " .. pid)
    if kill then kill:close() end
  end
end

local function json(value)
  local kind = type(value)
  if kind == "table" then
    local parts = {}
    for k, v in pairs(value) do
      table.insert(parts, string.format("%q:%s", tostring(k), json(v)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif kind == "number" then
    if value ~= value or value == math.huge or value == -math.huge then return "null" end
    return string.format("%.17g", value)
  elseif kind == "nil" then
    return "null"
  end
  return string.format("%q", tostring(value))
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    local s = thread:get("statuses") or {}
    for code, n in pairs(s) do
      counts[code] = (counts[code] or 0) + n
    end
  end
  local percentiles = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    percentiles[tostring(p)] = latency:percentile(p)
  end
  io.write("WRK_JSON ", json({
    durationUs = summary.duration,
    requests = summary.requests,
    bytes = summary.bytes,
    errors = {
      connect = summary.errors.connect,
      read = summary.errors.read,
      write = summary.errors.write,
      status = summary.errors.status,
      timeout = summary.errors.timeout,
    },
    latencyUs = {
      min = latency.min,
      max = latency.max,
      mean = latency.mean,
      stdev = latency.stdev,
      percentiles = percentiles,
    },
    statuses = counts,
  }), "\n")
end
