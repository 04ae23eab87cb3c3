-- Sends each Cookie line of the file named by COOKIES once, round robin: with 2 wrk threads, thread k sends lines k+1, k+3, ...
local threads = {}
function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end
function init(args)
  cookies = {}
  for line in io.lines(os.getenv("COOKIES")) do
    table.insert(cookies, line)
  end
  i = id + 1
  bad = 0
end
function request()
  local c = cookies[i]
  i = i + 2
  if i > #cookies then i = id + 1 end
  return wrk.format("GET", "/app/page", { ["Cookie"] = c })
end
function response(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
function done(summary, latency, requests)
  local total_bad = 0
  for _, t in ipairs(threads) do total_bad = total_bad + t:get("bad") end
  io.write(string.format("RESULT requests=%d bad=%d\n", summary.requests, total_bad))
end
