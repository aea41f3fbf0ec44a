-- POST /api/v1/consume/batch with 500 events for one account (bench-1).
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("KEY")
local events = {}
for i = 1, 500 do events[i] = '{"account": "bench-1", "feature": "api_call"}' end
wrk.body = '{"events": [' .. table.concat(events, ",") .. ']}'
wrk.path = "/api/v1/consume/batch"
