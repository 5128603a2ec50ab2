-- wrk script for benches/http.sh: one request shape per MODE (environment variables).
--   MODE     akka_get | akka_post | iron_get | iron_put | flash_get | flash_add | hello
--   KEYS     keys written by the preload (reads pick one at random; default 10000)
--   PRELOAD  "1": write keys k0..k(KEYS-1) (striped over wrk threads) instead of new keys
--   RUN      a per-run tag, so new keys never collide with an earlier run's
--   JWT, IRON_TOKEN, IRON_PROJECT, FLASH_CLIENT, FLASH_KEY: the --dev sample credentials
local mode = os.getenv("MODE") or "hello"
local keys = tonumber(os.getenv("KEYS") or "10000")
local preload = os.getenv("PRELOAD") == "1"
local run = os.getenv("RUN") or "0"
local jwt = os.getenv("JWT") or ""
local iron_token = os.getenv("IRON_TOKEN") or ""
local iron_project = os.getenv("IRON_PROJECT") or ""
local flash_client = os.getenv("FLASH_CLIENT") or ""
local flash_key = os.getenv("FLASH_KEY") or ""

-- 150 value bytes, as the engine benchmark and redis-benchmark -d 150.
local value = string.rep("v", 150)
local iron_body = '{"value":"' .. string.rep("v", 150) .. '"}'
local flash_body = '{"v":"' .. string.rep("v", 142) .. '"}'

local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end

local counter = 0
local function write_key()
  counter = counter + 1
  if preload then
    local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
    return "k" .. ((id + nthreads * counter) % keys)
  end
  return "w" .. run .. "-" .. id .. "-" .. counter
end

local function read_key()
  return "k" .. math.random(0, keys - 1)
end

local function iron_path(key)
  return "/1/projects/" .. iron_project .. "/caches/bench/items/" .. key
end

request = function()
  if mode == "akka_get" then
    return wrk.format("GET", "/bench/" .. read_key(), { ["Authorization"] = "Bearer " .. jwt })
  elseif mode == "akka_post" then
    return wrk.format("POST", "/bench/" .. write_key(), {
      ["Authorization"] = "Bearer " .. jwt,
      ["Content-Type"] = "application/octet-stream",
    }, value)
  elseif mode == "iron_get" then
    return wrk.format("GET", iron_path(read_key()), { ["Authorization"] = "OAuth " .. iron_token })
  elseif mode == "iron_put" then
    return wrk.format("PUT", iron_path(write_key()), {
      ["Authorization"] = "OAuth " .. iron_token,
      ["Content-Type"] = "application/json",
    }, iron_body)
  elseif mode == "flash_get" then
    return wrk.format("GET", "/v1/cache/get", {
      ["ClientId"] = flash_client,
      ["Authorization"] = flash_key,
      ["DataKey"] = read_key(),
    })
  elseif mode == "flash_add" then
    return wrk.format("POST", "/v1/cache/add", {
      ["ClientId"] = flash_client,
      ["Authorization"] = flash_key,
      ["DataKey"] = write_key(),
      ["Content-Type"] = "application/json",
    }, flash_body)
  end
  return wrk.format("GET", "/")
end
