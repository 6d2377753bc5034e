-- wrk script for POST /v1/events: body from $BENCH_BODY_FILE, bearer token from $BENCH_TOKEN.
--   BENCH_BODY_FILE=body.json BENCH_TOKEN=... wrk -t2 -c50 -d15s -s bench/post.lua URL
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
