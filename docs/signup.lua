local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
counter = 0
function request()
  counter = counter + 1
  local body = string.format('{"slug":"t%d-%d"}', tid, counter)
  return wrk.format("POST", "/api/tenants", {["Content-Type"]="application/json", ["Host"]="localhost"}, body)
end
