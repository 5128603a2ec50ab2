#!/usr/bin/env bash
# HTTP benchmark, side by side (issue 6): the ttlcask server (durability never and always)
# against an in-repo hyper hello-world and Redis, in one run on loopback, 64 connections.
# Prints one markdown table with requests/s, p50/p99 and ratios, and the targets met/missed.
#
# It runs ROUNDS rounds (default 3), each measuring every server once, one after another:
# on a shared machine the same server's rate moves 15-30% from minute to minute, so a ratio
# is taken within each round (its servers measured minutes apart at most) and the table
# shows each row's median over the rounds, with the range of its ratios; a target is judged
# on the median ratio.
#
#   bash benches/http.sh            # 10 s per wrk run, 3 rounds
#   DURATION=3s ROUNDS=1 bash benches/http.sh  # a quick pass
#
# Needs wrk and redis-server/redis-benchmark (installed with apt-get when missing).
# Every server started here listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
KEYS=${KEYS:-10000}
REDIS_REQUESTS=${REDIS_REQUESTS:-200000}
BASE=${TTLCASK_BENCH_DIR:-${TMPDIR:-/tmp}}
PORT_NEVER=${PORT_NEVER:-9201}
PORT_ALWAYS=${PORT_ALWAYS:-9202}
PORT_HELLO=${PORT_HELLO:-9203}
PORT_REDIS=${PORT_REDIS:-6391}

# The --dev sample credentials (DESIGN.md "Running it").
export JWT="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmciLCJuYW1lIjoiSm9obiBEb2UiLCJzZXJ2aWNlTGV2ZWwiOiJmcmVlIn0.rds8orVxVz149ovTxxYzFIqGmSdWJUlHONem9avKBgQ"
export IRON_TOKEN="abc4c7c627376858"
export IRON_PROJECT="0123456789abcdef01234567"
export FLASH_CLIENT="v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1"
export FLASH_KEY="v1:api_c1c9676fc333043a298551158a22ce64a2796d54"
export KEYS WRK_THREADS
export RUN=$$
LUA=benches/http/requests.lua

need() { command -v "$1" >/dev/null 2>&1; }
if ! need wrk || ! need redis-server || ! need redis-benchmark; then
  echo "installing wrk and redis-server" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk redis-server >/dev/null
fi

echo "building release binaries" >&2
cargo build --release -q -p ttlcask --bin ttlcask
cargo build --release -q -p ttlcask-bench --bin hyper_hello
BIN=${CARGO_TARGET_DIR:-target}/release

WORK=$(mktemp -d "$BASE/ttlcask-http-bench.XXXXXX")
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

wait_http() { # url
  for _ in $(seq 1 200); do
    curl -sf -o /dev/null "$1" && return 0
    sleep 0.05
  done
  echo "no answer from $1" >&2
  return 1
}

start_ttlcask() { # durability port
  "$BIN/ttlcask" serve --dev --durability "$1" --listen "127.0.0.1:$2" \
    --data-dir "$WORK/data-$1" >"$WORK/ttlcask-$1.log" 2>&1 &
  PIDS+=($!)
  wait_http "http://127.0.0.1:$2/healthz"
}

# wrk: prints "rps p50_ms p99_ms errors" (errors = non-2xx/3xx responses + socket errors).
wrk_run() { # mode port [preload]
  local out
  out=$(MODE="$1" PRELOAD="${3:-0}" wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" \
    --latency -s "$LUA" "http://127.0.0.1:$2" 2>&1)
  echo "$out" >>"$WORK/wrk.log"
  echo "$out" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) err += $i }
    END { printf "%s %.3f %.3f %d\n", rps, p50, p99, err }'
}

# redis-benchmark: prints "get_rps get_p50 get_p99 set_rps set_p50 set_p99".
redis_run() { # appendfsync round
  local dir="$WORK/redis-$1-$2" out
  mkdir -p "$dir"
  redis-server --port "$PORT_REDIS" --bind 127.0.0.1 --dir "$dir" --save "" \
    --appendonly yes --appendfsync "$1" --daemonize no >"$dir/log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 100); do redis-cli -p "$PORT_REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
  out=$(timeout 120 redis-benchmark -p "$PORT_REDIS" -c "$CONNECTIONS" -d 150 -r "$KEYS" \
    -n "$REDIS_REQUESTS" -t set,get --csv 2>/dev/null)
  echo "$out" >>"$WORK/redis.log"
  if [ -z "$out" ]; then
    echo "redis-benchmark printed nothing (appendfsync $1); redis-server's log:" >&2
    cat "$dir/log" >&2
  fi
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$out" | tr -d '"' | awk -F, '
    $1 == "SET" { s = $2 " " $5 " " $7 } $1 == "GET" { g = $2 " " $5 " " $7 }
    END { print g " " s }'
}

"$BIN/hyper_hello" "127.0.0.1:$PORT_HELLO" 2>/dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT_HELLO/"
start_ttlcask never "$PORT_NEVER"
start_ttlcask always "$PORT_ALWAYS"
echo "ttlcask --durability never: preload $KEYS keys per dialect" >&2
for m in akka_post iron_put flash_add; do wrk_run "$m" "$PORT_NEVER" 1 >/dev/null; done

# R["round row"] = "rps p50 p99 errors"; rows: hello, redis_get, redis_set_no, redis_set,
# and "<durability> <mode>" for ttlcask.
declare -A R
TTL_ROWS=("never akka_get" "never iron_get" "never flash_get" "never akka_post" "never iron_put"
  "never flash_add" "always akka_post" "always iron_put" "always flash_add")
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round of $ROUNDS: hyper hello-world" >&2
  R["$round hello"]=$(wrk_run hello "$PORT_HELLO")
  echo "  redis appendfsync no, then always" >&2
  read -r g g50 g99 s s50 s99 <<<"$(redis_run no "$round")"
  R["$round redis_get"]="$g $g50 $g99 0"
  R["$round redis_set_no"]="$s $s50 $s99 0"
  read -r _ _ _ s s50 s99 <<<"$(redis_run always "$round")"
  R["$round redis_set"]="$s $s50 $s99 0"
  # New keys in every round (write_key's tag), never the previous round's.
  export RUN="$$-$round"
  for key in "${TTL_ROWS[@]}"; do
    dur=${key%% *}
    m=${key#* }
    # The never-durable runs leave dirty pages; flush them before the durable ones so that
    # their writeback does not compete with the fsyncs (Redis's durable run also started on a
    # clean disk).
    if [ "$key" = "always akka_post" ]; then sync; fi
    echo "  ttlcask --durability $dur $m" >&2
    if [ "$dur" = never ]; then port=$PORT_NEVER; else port=$PORT_ALWAYS; fi
    R["$round $key"]=$(wrk_run "$m" "$port")
  done
done

# field N (1 = rps) of row ROW in ROUND
field() { read -r -a f <<<"${R["$1 $2"]}"; echo "${f[$(($3 - 1))]}"; }
# the median of the numbers on standard input
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# row's median of field N over the rounds
med() { for r in $(seq 1 "$ROUNDS"); do field "$r" "$1" "$2"; done | median; }
# row ÷ peer within each round: "median min max"
ratios() {
  for r in $(seq 1 "$ROUNDS"); do
    awk -v a="$(field "$r" "$1" 1)" -v b="$(field "$r" "$2" 1)" 'BEGIN { if (b > 0) print a / b; else print 0 }'
  done | sort -g | awk '{ v[NR] = $1 } END { m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2; print m, v[1], v[NR] }'
}
# "0.81× (0.75–0.86)" from ratios' output; the range only with more than one round
show() {
  read -r m lo hi <<<"$1"
  if [ "$ROUNDS" -gt 1 ]; then
    awk -v m="$m" -v lo="$lo" -v hi="$hi" 'BEGIN { printf "%.2f× (%.2f–%.2f)", m, lo, hi }'
  else
    awk -v m="$m" 'BEGIN { printf "%.2f×", m }'
  fi
}
ge() { awk -v m="$1" -v k="$2" 'BEGIN { if (m >= k) print "met"; else print "**missed**" }'; }
errors() { for r in $(seq 1 "$ROUNDS"); do field "$r" "$1" 4; done | awk '{ s += $1 } END { print s + 0 }'; }
peer_of() { # row -> the Redis row it is compared with
  case "$1" in
    *_get) echo redis_get ;;
    always*) echo redis_set ;;
    *) echo redis_set_no ;;
  esac
}

echo
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION; redis-benchmark -c $CONNECTIONS -d 150 -r $KEYS -n $REDIS_REQUESTS; $ROUNDS round(s), each server once per round; requests/s, p50 and p99 (ms) are medians over the rounds, ratios the median of the rounds' ratios (range in brackets); errors = non-2xx responses + socket errors, all rounds."
echo
echo "| test | server | requests/s | p50 ms | p99 ms | errors | ÷ hyper hello | ÷ Redis (GET, or SET same fsync) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
row() { # row test server
  local redis=""
  [ "$1" != hello ] && [ "${1#redis}" = "$1" ] && redis=$(show "$(ratios "$1" "$(peer_of "$1")")")
  [ "$1" = hello ] && redis=$(show "$(ratios hello redis_get)")
  [ "$1" = redis_get ] && redis="1.00×"
  local hello
  if [ "$1" = hello ]; then hello="1.00×"; else hello=$(show "$(ratios "$1" hello)"); fi
  printf "| %s | %s | %.0f | %s | %s | %s | %s | %s |\n" "$2" "$3" "$(med "$1" 1)" "$(med "$1" 2)" \
    "$(med "$1" 3)" "$(errors "$1")" "$hello" "$redis"
}
row hello "hello-world GET" "hyper 1 (in repo)"
row redis_get GET redis
row redis_set_no SET "redis appendfsync no"
row redis_set SET "redis appendfsync always"
for key in "${TTL_ROWS[@]}"; do
  row "$key" "${key#* }" "ttlcask --durability ${key%% *}"
done

echo
echo "| target | measured (median of the rounds' ratios, range) | |"
echo "|---|---|---|"
for m in akka_get iron_get flash_get; do
  read -r hm _ <<<"$(ratios "never $m" hello)"
  read -r gm _ <<<"$(ratios "never $m" redis_get)"
  echo "| $m ≥ 0.85× hyper hello-world | $(show "$(ratios "never $m" hello)") | $(ge "$hm" 0.85) |"
  echo "| $m ≥ Redis GET | $(show "$(ratios "never $m" redis_get)") | $(ge "$gm" 1) |"
done
for m in akka_post iron_put flash_add; do
  read -r sm _ <<<"$(ratios "always $m" redis_set)"
  echo "| durable $m ≥ Redis SET appendfsync always | $(show "$(ratios "always $m" redis_set)") | $(ge "$sm" 1) |"
done
