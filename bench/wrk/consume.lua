-- POST /api/v1/consume for a random one of ACCOUNTS accounts (ACCOUNTS=1: the hot account).
local accounts = tonumber(os.getenv("ACCOUNTS") or "10000")
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
local path = os.getenv("ENDPOINT") or "/api/v1/consume"
request = function()
  local account = "bench-" .. math.random(0, accounts - 1)
  local body = '{"account": "' .. account .. '", "feature": "api_call"}'
  return wrk.format(nil, path, nil, body)
end
