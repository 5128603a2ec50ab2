#!/usr/bin/env bash
# HTTP benchmark, side by side (issue 6): the ttlcask server (durability never and always)
# against an in-repo hyper hello-world and Redis, in one run on loopback, 64 connections.
# Prints one markdown table with requests/s, p50/p99 and ratios, and the targets met/missed.
#
#   bash benches/http.sh            # 10 s per wrk run
#   DURATION=3s bash benches/http.sh  # a quick pass
#
# Needs wrk and redis-server/redis-benchmark (installed with apt-get when missing).
# Every server started here listens on 127.0.0.1 only and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
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
redis_run() { # appendfsync
  local dir="$WORK/redis-$1" out
  mkdir -p "$dir"
  redis-server --port "$PORT_REDIS" --bind 127.0.0.1 --dir "$dir" --save "" \
    --appendonly yes --appendfsync "$1" --daemonize no >"$dir/log" 2>&1 &
  local pid=$!
  PIDS+=($pid)
  for _ in $(seq 1 100); do redis-cli -p "$PORT_REDIS" ping >/dev/null 2>&1 && break; sleep 0.05; done
  out=$(timeout 120 redis-benchmark -p "$PORT_REDIS" -c "$CONNECTIONS" -d 150 -r "$KEYS" \
    -n "$REDIS_REQUESTS" -t set,get --csv 2>/dev/null)
  echo "$out" >>"$WORK/redis.log"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  echo "$out" | tr -d '"' | awk -F, '
    $1 == "SET" { s = $2 " " $5 " " $7 } $1 == "GET" { g = $2 " " $5 " " $7 }
    END { print g " " s }'
}

echo "hyper hello-world" >&2
"$BIN/hyper_hello" "127.0.0.1:$PORT_HELLO" 2>/dev/null &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT_HELLO/"
read -r HELLO HELLO_P50 HELLO_P99 HELLO_ERR <<<"$(wrk_run hello "$PORT_HELLO")"

echo "redis appendfsync no, then always" >&2
read -r RGET RGET_P50 RGET_P99 RSET_NO RSET_NO_P50 RSET_NO_P99 <<<"$(redis_run no)"
read -r _ _ _ RSET RSET_P50 RSET_P99 <<<"$(redis_run always)"

echo "ttlcask --durability never: preload $KEYS keys per dialect, then reads and writes" >&2
start_ttlcask never "$PORT_NEVER"
for m in akka_post iron_put flash_add; do wrk_run "$m" "$PORT_NEVER" 1 >/dev/null; done
declare -A R
for m in akka_get iron_get flash_get akka_post iron_put flash_add; do
  echo "  $m" >&2
  R["never $m"]=$(wrk_run "$m" "$PORT_NEVER")
done

echo "ttlcask --durability always: durable writes" >&2
# The never-durable phase leaves dirty pages; flush them first so that their writeback does
# not compete with the durable runs' fsyncs (Redis's durable run also started on a clean disk).
sync
start_ttlcask always "$PORT_ALWAYS"
for m in akka_post iron_put flash_add; do
  echo "  $m" >&2
  R["always $m"]=$(wrk_run "$m" "$PORT_ALWAYS")
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
ge() { awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN { if (a >= k * b) print "met"; else print "**missed**" }'; }

echo
echo "wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION; redis-benchmark -c $CONNECTIONS -d 150 -r $KEYS -n $REDIS_REQUESTS; p50/p99 in ms; errors = non-2xx responses + socket errors."
echo
echo "| test | server | requests/s | p50 ms | p99 ms | errors | ÷ hyper hello | ÷ Redis (GET, or SET same fsync) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
printf "| hello-world GET | hyper 1 (in repo) | %.0f | %s | %s | %s | 1.00× | %s |\n" "$HELLO" "$HELLO_P50" "$HELLO_P99" "$HELLO_ERR" "$(ratio "$HELLO" "$RGET")"
printf "| GET | redis | %.0f | %s | %s | | %s | 1.00× |\n" "$RGET" "$RGET_P50" "$RGET_P99" "$(ratio "$RGET" "$HELLO")"
printf "| SET | redis appendfsync no | %.0f | %s | %s | | %s | |\n" "$RSET_NO" "$RSET_NO_P50" "$RSET_NO_P99" "$(ratio "$RSET_NO" "$HELLO")"
printf "| SET | redis appendfsync always | %.0f | %s | %s | | %s | |\n" "$RSET" "$RSET_P50" "$RSET_P99" "$(ratio "$RSET" "$HELLO")"
for key in "never akka_get" "never iron_get" "never flash_get" "never akka_post" "never iron_put" "never flash_add" \
  "always akka_post" "always iron_put" "always flash_add"; do
  read -r rps p50 p99 err <<<"${R[$key]}"
  dur=${key%% *}
  m=${key#* }
  case "$m" in
    *_get) peer=$RGET ;;
    *) if [ "$dur" = always ]; then peer=$RSET; else peer=$RSET_NO; fi ;;
  esac
  printf "| %s | ttlcask --durability %s | %.0f | %s | %s | %s | %s | %s |\n" \
    "$m" "$dur" "$rps" "$p50" "$p99" "$err" "$(ratio "$rps" "$HELLO")" "$(ratio "$rps" "$peer")"
done

echo
echo "| target | measured | |"
echo "|---|---|---|"
for m in akka_get iron_get flash_get; do
  read -r rps _ _ _ <<<"${R["never $m"]}"
  echo "| $m ≥ 0.85× hyper hello-world | $(ratio "$rps" "$HELLO") | $(ge "$rps" "$HELLO" 0.85) |"
  echo "| $m ≥ Redis GET | $(ratio "$rps" "$RGET") | $(ge "$rps" "$RGET" 1) |"
done
for m in akka_post iron_put flash_add; do
  read -r rps _ _ _ <<<"${R["always $m"]}"
  echo "| durable $m ≥ Redis SET appendfsync always | $(ratio "$rps" "$RSET") | $(ge "$rps" "$RSET" 1) |"
done
