-- The soak's requests (benches/soak.sh): the load benchmark's mixed traffic (ETAs, batches,
-- positions; requests.lua, with SCENARIO=mixed) and, one request in five, a read of the demo
-- fleet's shipments: a shipment, its live estimate, or a page of those under way with their
-- estimates (the dashboard's read). SHIPMENTS names them (ids, comma-separated); DELAY_MS
-- paces each connection, so that the soak is a steady load rather than the most the
-- machine can take.
dofile(os.getenv("LOAD_DIR") .. "/requests.lua")

local mixed = request
local reading = { ["Authorization"] = "Bearer " .. os.getenv("ETAPE_KEY") }
local shipments = {}
for id in string.gmatch(os.getenv("SHIPMENTS") or "", "[^,]+") do
  shipments[#shipments + 1] = id
end
local pause = tonumber(os.getenv("DELAY_MS") or "20")
local asked = 0

function request()
  asked = asked + 1
  if asked % 5 ~= 0 or #shipments == 0 then
    return mixed()
  end
  local turn = math.floor(asked / 5)
  local id = shipments[turn % #shipments + 1]
  if turn % 3 == 0 then
    return wrk.format("GET", "/v1/shipments/" .. id, reading)
  elseif turn % 3 == 1 then
    return wrk.format("GET", "/v1/shipments/" .. id .. "/eta", reading)
  end
  return wrk.format("GET", "/v1/shipments?status=in_transit&include=estimate&limit=50", reading)
end

function delay()
  return pause
end
