#!/usr/bin/env bash
# What HAProxy costs in front of a node (issue 12): one ttlcask node (--durability always) and
# HAProxy with the config `ttlcask cluster haproxy` generates for a one-node cluster file (all
# 1024 slots on that node). The same wrk runs go to the node directly and through the proxy,
# alternating (direct, proxy, direct, proxy, ...) so the table shows the run-to-run spread.
# Prints one markdown table: requests/s direct vs proxy and their ratio, p50/p99 direct vs
# proxy and the latency the proxy adds, at CONNECTIONS (64: both saturated, so latency is
# mostly queueing) and again at LOW_CONNECTIONS (1: the hop's own cost, nothing queued).
#
#   bash benches/haproxy.sh                # 10 s per wrk run, 2 rounds
#   DURATION=5s bash benches/haproxy.sh    # a quicker pass
#   ROUNDS=3 MODES="akka_get akka_post" bash benches/haproxy.sh
#
# Needs haproxy ≥ 2.6 (apt-get install haproxy) and wrk (installed with apt-get when missing).
# Every process started here listens on 127.0.0.1 only and is stopped on exit. On a small
# machine wrk, HAProxy and the node share the same cores: the proxy's figures include that
# competition for CPU, not only the extra hop.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-10s}
PRELOAD_DURATION=${PRELOAD_DURATION:-3s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
KEYS=${KEYS:-10000}
ROUNDS=${ROUNDS:-2}
# A second pass at low concurrency, where latency is the hop's rather than queueing's
# ("" to skip it).
LOW_CONNECTIONS=${LOW_CONNECTIONS-1}
MODES=${MODES:-akka_get iron_get akka_post}
BASE=${TTLCASK_BENCH_DIR:-${TMPDIR:-/tmp}}
PORT_NODE=${PORT_NODE:-9211}
PORT_PROXY=${PORT_PROXY:-9212}

# The --dev sample credentials (DESIGN.md "Running it").
export JWT="eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmciLCJuYW1lIjoiSm9obiBEb2UiLCJzZXJ2aWNlTGV2ZWwiOiJmcmVlIn0.rds8orVxVz149ovTxxYzFIqGmSdWJUlHONem9avKBgQ"
export IRON_TOKEN="abc4c7c627376858"
export IRON_PROJECT="0123456789abcdef01234567"
export FLASH_CLIENT="v1:uid_79aec251cd938b1313d7f74611f2c0d1abf894f1"
export FLASH_KEY="v1:api_c1c9676fc333043a298551158a22ce64a2796d54"
export KEYS WRK_THREADS
LUA=benches/http/requests.lua

need() { command -v "$1" >/dev/null 2>&1; }
HAPROXY=${HAPROXY:-$(command -v haproxy || echo /usr/sbin/haproxy)}
if [ ! -x "$HAPROXY" ]; then
  echo "no haproxy binary (apt-get install haproxy, ≥ 2.6)" >&2
  exit 1
fi
if ! need wrk; then
  echo "installing wrk" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi

echo "building the release binary" >&2
cargo build --release -q -p ttlcask --bin ttlcask
BIN=${CARGO_TARGET_DIR:-target}/release/ttlcask

WORK=$(mktemp -d "$BASE/ttlcask-haproxy-bench.XXXXXX")
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

# wrk: prints "rps p50_ms p99_ms errors" (errors = non-2xx/3xx responses + socket errors).
wrk_run() { # mode port run-tag [preload] [duration] [connections]
  local out c=${6:-$CONNECTIONS} t=$WRK_THREADS
  [ "$c" -lt "$t" ] && t=$c
  out=$(MODE="$1" RUN="$3" PRELOAD="${4:-0}" WRK_THREADS="$t" wrk -t"$t" -c"$c" \
    -d"${5:-$DURATION}" --latency -s "$LUA" "http://127.0.0.1:$2" 2>&1)
  echo "$out" >>"$WORK/wrk.log"
  echo "$out" | awk '
    function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /^ +50%/ { p50 = ms($2) } /^ +99%/ { p99 = ms($2) }
    /Requests\/sec:/ { rps = $2 }
    /Non-2xx or 3xx responses:/ { err += $5 }
    /Socket errors:/ { for (i = 3; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) err += $i }
    END { printf "%s %.3f %.3f %d\n", rps, p50, p99, err }'
}

echo "one node, --durability always" >&2
"$BIN" serve --dev --durability always --listen "127.0.0.1:$PORT_NODE" \
  --data-dir "$WORK/node1" >"$WORK/node1.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT_NODE/healthz"

echo "HAProxy with the config of \`ttlcask cluster haproxy\` for a one-node cluster" >&2
cat >"$WORK/cluster.toml" <<EOF
bind = "127.0.0.1:$PORT_PROXY"
haproxy_socket = "haproxy.sock"
read_map = "read.map"
write_map = "write.map"
check_interval_ms = 1000

[[nodes]]
name = "node1"
address = "127.0.0.1:$PORT_NODE"
admin_token_file = "node1/admin.token"
EOF
"$BIN" cluster haproxy "$WORK/cluster.toml" >"$WORK/haproxy.cfg"
slots=$(awk '$2 == "node1"' "$WORK/read.map" | wc -l)
wslots=$(awk '$2 == "node1"' "$WORK/write.map" | wc -l)
if [ "$slots" != 1024 ] || [ "$wslots" != 1024 ]; then
  echo "expected all 1024 slots on node1, got $slots (read) and $wslots (write)" >&2
  exit 1
fi
"$HAPROXY" -c -q -f "$WORK/haproxy.cfg"
"$HAPROXY" -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)
wait_http "http://127.0.0.1:$PORT_PROXY/version"

echo "preload $KEYS keys (Akka and Iron) on the node, then check a read through the proxy" >&2
wrk_run akka_post "$PORT_NODE" preload 1 "$PRELOAD_DURATION" >/dev/null
wrk_run iron_put "$PORT_NODE" preload 1 "$PRELOAD_DURATION" >/dev/null
for k in 0 $((KEYS - 1)); do
  head=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $JWT" \
    "http://127.0.0.1:$PORT_PROXY/bench/k$k" | tr -d '\r' || true)
  if ! grep -q '^HTTP/[0-9.]* 200' <<<"$head" || ! grep -qi '^x-ttlcask-slot: [0-9]' <<<"$head"; then
    echo "GET /bench/k$k through the proxy did not answer 200 with X-Ttlcask-Slot:" >&2
    echo "$head" >&2
    exit 1
  fi
done
# Let the preload's dirty pages reach the disk before the durable runs (as http.sh).
sync

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A R
for c in $CONNECTIONS $LOW_CONNECTIONS; do
  for m in $MODES; do
    for r in $(seq 1 "$ROUNDS"); do
      for side in direct proxy; do
        port=$PORT_NODE
        if [ "$side" = proxy ]; then port=$PORT_PROXY; fi
        echo "  $c connections, $m round $r $side" >&2
        R["$c $m $r $side"]=$(wrk_run "$m" "$port" "$$-$c-$m-$r-$side" 0 "$DURATION" "$c")
      done
    done
  done
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "n/a" }'; }
added() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%+.3f", a - b }'; }
mean() { echo "$@" | awk '{ s = 0; for (i = 1; i <= NF; i++) s += $i; printf "%.3f", s / NF }'; }

echo
echo "wrk -t$WRK_THREADS -c$CONNECTIONS (and -c$LOW_CONNECTIONS) -d$DURATION per run, loopback; one node --durability always, $KEYS preloaded keys; $("$HAPROXY" -v | head -1 | awk '{ print $1, $2, $3 }'), config from \`ttlcask cluster haproxy\` (one node, 1024 slots); $(nproc) CPUs shared by wrk, HAProxy and the node; load average $LOAD_BEFORE before the runs, $LOAD_AFTER after. p50/p99 in ms; added = proxy − direct; errors = non-2xx responses + socket errors (direct/proxy)."
echo
echo "| test | conns | round | direct req/s | proxy req/s | proxy ÷ direct | direct p50 | proxy p50 | added p50 | direct p99 | proxy p99 | added p99 | errors |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for cm in $(for c in $CONNECTIONS $LOW_CONNECTIONS; do for m in $MODES; do echo "$c:$m"; done; done); do
  c=${cm%%:*} m=${cm#*:}
  drps=() prps=() dp50=() pp50=() dp99=() pp99=()
  for r in $(seq 1 "$ROUNDS"); do
    read -r a b q e1 <<<"${R["$c $m $r direct"]}"
    read -r x y z e2 <<<"${R["$c $m $r proxy"]}"
    drps+=("$a") prps+=("$x") dp50+=("$b") pp50+=("$y") dp99+=("$q") pp99+=("$z")
    printf "| %s | %s | %s | %.0f | %.0f | %s | %s | %s | %s | %s | %s | %s | %s/%s |\n" \
      "$m" "$c" "$r" "$a" "$x" "$(ratio "$x" "$a")" "$b" "$y" "$(added "$y" "$b")" \
      "$q" "$z" "$(added "$z" "$q")" "$e1" "$e2"
  done
  a=$(mean "${drps[@]}") x=$(mean "${prps[@]}")
  b=$(mean "${dp50[@]}") y=$(mean "${pp50[@]}") q=$(mean "${dp99[@]}") z=$(mean "${pp99[@]}")
  printf "| **%s** | %s | mean | %.0f | %.0f | **%s** | %s | %s | **%s** | %s | %s | **%s** | |\n" \
    "$m" "$c" "$a" "$x" "$(ratio "$x" "$a")" "$b" "$y" "$(added "$y" "$b")" "$q" "$z" "$(added "$z" "$q")"
done
