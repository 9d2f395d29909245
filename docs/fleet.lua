-- wrk script: the request mix of `silo bench`, sent by wrk (an outside load
-- generator) to a `silo serve` over a fleet that `silo bench --data DIR`
-- provisioned (its tenants and tokens are in DIR/bench-fleet.json).
--
--   wrk -t2 -c16 -d15s -s docs/fleet.lua http://127.0.0.1:8080 -- \
--       DIR/bench-fleet.json [key=value ...]
--
-- Keys, as silo bench's flags: placement=database|shared (database),
-- mix=read|write|mixed (read; mixed is 80 % reads), dist=zipf|uniform
-- (zipf), zipf-s=1.1, tenants=N (how many of the placement's tenants to
-- drive, the first N; default all; 1 is the one-tenant ceiling), and
-- base-domain=localhost (the server's --base-domain: requests go to
-- <slug>.<base-domain>). The reads and writes are silo bench's: GET a
-- project (50 %), a task (30 %), the project list (10 %), a project's tasks
-- (10 %); create a task (50 %) or toggle a task's done (50 %). Tenants are
-- chosen as silo bench does: P(k) proportional to (1+k)^-s over a fixed
-- random permutation of them. wrk counts the answers that were not 2xx
-- ("Non-2xx or 3xx responses"); done() adds the latency percentiles.

local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

local tenants, cdf, perm = {}, nil, nil
local mix, dist = "read", "zipf"

local function split(list)
  local out = {}
  for id in string.gmatch(list, '"([^"]+)"') do out[#out + 1] = id end
  return out
end

local usage = "usage: wrk ... -s docs/fleet.lua URL -- FLEET.json [placement=database] [mix=read] " ..
  "[dist=zipf] [zipf-s=1.1] [tenants=N] [base-domain=localhost]"

function init(args)
  local path = args[1]
  if path == nil then error(usage) end
  local opt = {placement = "database", mix = "read", dist = "zipf", ["zipf-s"] = "1.1",
               tenants = "0", ["base-domain"] = "localhost"}
  for i = 2, #args do
    local k, v = string.match(args[i], "^([%w-]+)=(.*)$")
    if k == nil or opt[k] == nil then error("unknown argument " .. args[i] .. "\n" .. usage) end
    opt[k] = v
  end
  mix, dist = opt.mix, opt.dist
  if mix ~= "read" and mix ~= "write" and mix ~= "mixed" then error("mix=read|write|mixed") end
  if dist ~= "zipf" and dist ~= "uniform" then error("dist=zipf|uniform") end
  local s = tonumber(opt["zipf-s"])
  if s == nil or s <= 1 then error("zipf-s must be a number > 1") end
  local f = assert(io.open(path, "r"))
  local text = f:read("*a")
  f:close()
  -- The placement's array: from its key to the first "}]" (an array's end)
  -- or, when it is empty, nothing.
  local _, open = string.find(text, '"' .. opt.placement .. '":%[')
  local section = ""
  if open ~= nil and string.sub(text, open + 1, open + 1) ~= "]" then
    local close = string.find(text, "}]", open, true)
    section = string.sub(text, open, close or #text)
  end
  for slug, token, projects, tasks in string.gmatch(section,
      '{"slug":"([^"]+)","token":"([^"]+)","projects":%[([^%]]*)%],"tasks":%[([^%]]*)%]}') do
    tenants[#tenants + 1] = {
      headers = {["Host"] = slug .. "." .. opt["base-domain"], ["Authorization"] = "Bearer " .. token,
                 ["Content-Type"] = "application/json"},
      projects = split(projects), tasks = split(tasks),
    }
  end
  local n = tonumber(opt.tenants)
  if n == nil or n < 0 then error("tenants must be a count") end
  if n > 0 and n < #tenants then
    for i = #tenants, n + 1, -1 do tenants[i] = nil end
  end
  if #tenants == 0 then error("no " .. opt.placement .. " tenants in " .. path) end

  -- The same permutation in every thread, then a seed of its own.
  math.randomseed(1)
  perm = {}
  for i = 1, #tenants do perm[i] = i end
  for i = #tenants, 2, -1 do
    local j = math.random(i)
    perm[i], perm[j] = perm[j], perm[i]
  end
  math.randomseed(1000 + (tid or 1))
  if dist == "zipf" then
    cdf = {}
    local sum = 0
    for k = 0, #tenants - 1 do
      sum = sum + (1 + k) ^ (-s)
      cdf[k + 1] = sum
    end
    for k = 1, #cdf do cdf[k] = cdf[k] / sum end
  end
end

local function pick()
  if #tenants == 1 then return tenants[1] end
  if cdf == nil then return tenants[math.random(#tenants)] end
  local u, lo, hi = math.random(), 1, #cdf
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if cdf[mid] < u then lo = mid + 1 else hi = mid end
  end
  return tenants[perm[lo]]
end

local function one(list) return list[math.random(#list)] end

function request()
  local t = pick()
  local x = math.random(100) - 1
  local pid = one(t.projects)
  if mix == "write" or (mix == "mixed" and math.random(100) <= 20) then
    if x < 50 then
      return wrk.format("POST", "/api/projects/" .. pid .. "/tasks", t.headers,
        '{"title":"bench task","done":false}')
    end
    local done = "false"
    if x % 2 == 0 then done = "true" end
    return wrk.format("PATCH", "/api/tasks/" .. one(t.tasks), t.headers, '{"done":' .. done .. '}')
  end
  if x < 50 then
    return wrk.format("GET", "/api/projects/" .. pid, t.headers)
  elseif x < 80 then
    return wrk.format("GET", "/api/tasks/" .. one(t.tasks), t.headers)
  elseif x < 90 then
    return wrk.format("GET", "/api/projects?limit=20", t.headers)
  end
  return wrk.format("GET", "/api/projects/" .. pid .. "/tasks?limit=20", t.headers)
end

function done(summary, latency, requests)
  -- wrk's own summary above counts the answers that were not 2xx.
  io.write(string.format("p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
    latency:percentile(50) / 1000, latency:percentile(90) / 1000,
    latency:percentile(99) / 1000, latency.max / 1000))
end
