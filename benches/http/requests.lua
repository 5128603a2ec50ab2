-- wrk script for benches/http.sh: one request shape per MODE (environment variables).
--   MODE     akka_get | akka_post | iron_get | iron_put | flash_get | flash_add | hello
--   KEYS     keys written by the preload (reads pick one at random; default 10000)
--   PRELOAD  "1": write keys k0..k(KEYS-1) (striped over wrk threads) instead of new keys
--   RUN      a per-run tag, so new keys never collide with an earlier run's
--   JWT, IRON_TOKEN, IRON_PROJECT, FLASH_CLIENT, FLASH_KEY: the --dev sample credentials
--
-- Requests are formatted once, not per request: every read request (one per key) and the
-- hello-world's when a thread starts, and for writes the text around the key, so that a
-- write costs one concatenation. wrk shares the machine's cores with the server it measures;
-- formatting each request anew (wrk.format walks a header table and joins the parts) cost
-- the client more per request for the servers with longer requests, and that CPU came out of
-- the server's share. Every server, the hello-world included, gets the same treatment.
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

local function iron_path(key)
  return "/1/projects/" .. iron_project .. "/caches/bench/items/" .. key
end

-- The request of this mode for `key` (`nil` for the hello-world, which has none).
local function format(key)
  if mode == "akka_get" then
    return wrk.format("GET", "/bench/" .. key, { ["Authorization"] = "Bearer " .. jwt })
  elseif mode == "akka_post" then
    return wrk.format("POST", "/bench/" .. key, {
      ["Authorization"] = "Bearer " .. jwt,
      ["Content-Type"] = "application/octet-stream",
    }, value)
  elseif mode == "iron_get" then
    return wrk.format("GET", iron_path(key), { ["Authorization"] = "OAuth " .. iron_token })
  elseif mode == "iron_put" then
    return wrk.format("PUT", iron_path(key), {
      ["Authorization"] = "OAuth " .. iron_token,
      ["Content-Type"] = "application/json",
    }, iron_body)
  elseif mode == "flash_get" then
    return wrk.format("GET", "/v1/cache/get", {
      ["ClientId"] = flash_client,
      ["Authorization"] = flash_key,
      ["DataKey"] = key,
    })
  elseif mode == "flash_add" then
    return wrk.format("POST", "/v1/cache/add", {
      ["ClientId"] = flash_client,
      ["Authorization"] = flash_key,
      ["DataKey"] = key,
      ["Content-Type"] = "application/json",
    }, flash_body)
  end
  return wrk.format("GET", "/")
end

local reads = nil      -- every read request, by key number (read modes)
local hello = nil      -- the hello-world's one request
local before, after    -- a write request's text around its key (write modes)
local nthreads = tonumber(os.getenv("WRK_THREADS") or "2")
local counter = 0

function init(args)
  if mode == "hello" then
    hello = format(nil)
  elseif mode == "akka_get" or mode == "iron_get" or mode == "flash_get" then
    reads = {}
    for i = 0, keys - 1 do
      reads[i] = format("k" .. i)
    end
  else
    -- Write keys are "k<n>" (preload) or "w<run>-<thread>-<n>"; a marker key shows where.
    local marker = "\1KEY\1"
    local text = format(marker)
    local at = string.find(text, marker, 1, true)
    before = string.sub(text, 1, at - 1)
    after = string.sub(text, at + #marker)
  end
end

request = function()
  if reads then
    return reads[math.random(0, keys - 1)]
  elseif hello then
    return hello
  end
  counter = counter + 1
  local key
  if preload then
    key = "k" .. ((id + nthreads * counter) % keys)
  else
    key = "w" .. run .. "-" .. id .. "-" .. counter
  end
  return before .. key .. after
end
