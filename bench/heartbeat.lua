-- wrk script: heartbeat POSTs spread uniformly at random over DC_DEFENDERS distinct Defenders
-- (default 1,000,000), with bodies byte-identical to bench/bench_fleet.h.
--   DC_DEFENDERS=1000000 wrk -t2 -c64 -d20s -s bench/heartbeat.lua http://127.0.0.1:8084
local n = tonumber(os.getenv("DC_DEFENDERS") or "1000000")

wrk.method = "POST"
wrk.path = "/api/v1/defender/heartbeat"
wrk.headers["Content-Type"] = "application/json"
-- DC_AUTH: the Authorization header (a Defender credential, "Bearer dcd1_…"); unset for bare_server.
local auth = os.getenv("DC_AUTH")
if auth and auth ~= "" then wrk.headers["Authorization"] = auth end

local function body(i)
  local host = string.format("task%028d", i)
  local f = i % 8
  local cluster = (f % 2 == 0) and "prod-web" or "prod-batch"
  return string.format(
    '{"hostname":"%s","type":"fargate",' ..
    '"appID":"service-%02d:0b7e6c4e-3f4b-4b7b-9d3c-1a2b3c4d5e%02d",' ..
    '"version":"32.07.123","cluster":"%s","collections":["All"],' ..
    '"cloudMetadata":{"provider":"aws","accountID":"123456789012",' ..
    '"region":"us-east-1","resourceID":"arn:aws:ecs:us-east-1:123456789012:' ..
    'task/%s/%s","awsExecutionEnv":"AWS_ECS_FARGATE",' ..
    '"image":"123456789012.dkr.ecr.us-east-1.amazonaws.com/service-%02d:v1.4.2"},' ..
    '"status":{"defender":true,"features":true}}',
    host, f, f, cluster, cluster, host, f)
end

function init(args)
  math.randomseed(os.time() + (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))
end

function request()
  return wrk.format(nil, nil, nil, body(math.random(0, n - 1)))
end

local failures = 0
function response(status, headers, b)
  if status ~= 200 then failures = failures + 1 end
end

function done(summary, latency, requests)
  io.write(string.format("non-2xx or errors: %d status errors, %d socket errors\n",
    summary.errors.status, summary.errors.connect + summary.errors.read +
    summary.errors.write + summary.errors.timeout))
end
