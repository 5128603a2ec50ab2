#!/usr/bin/env bash
# Runs the official IronCache python client (PyPI iron-cache) against `ttlcask serve --dev`
# on a free loopback port with a temp data dir; HOME and the working dir are isolated so
# that no ~/.iron.json or ./iron.json changes the client's configuration.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cargo build --quiet --bin ttlcask
bin="$root/target/debug/ttlcask"

work=$(mktemp -d)
server_pid=""
cleanup() {
    if [ -n "$server_pid" ]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
"$bin" serve --dev --listen "127.0.0.1:$port" --data-dir "$work/data" --durability never \
    >"$work/server.log" 2>&1 &
server_pid=$!

ready=""
for _ in $(seq 1 100); do
    if python3 -c "import urllib.request, sys; urllib.request.urlopen('http://127.0.0.1:$port/healthz', timeout=1)" 2>/dev/null; then
        ready=yes
        break
    fi
    sleep 0.1
done
if [ -z "$ready" ]; then
    echo "ttlcask did not become healthy; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
fi

python3 -m venv "$work/venv"
"$work/venv/bin/pip" install --quiet --disable-pip-version-check iron-cache

mkdir -p "$work/home" "$work/cwd"
cd "$work/cwd"
env -u IRON_CACHE_HOST -u IRON_HOST -u IRON_CACHE_TOKEN -u IRON_CACHE_PROJECT_ID \
    HOME="$work/home" \
    IRON_CACHE_PROTOCOL=http \
    IRON_CACHE_HOST=127.0.0.1 \
    IRON_CACHE_PORT="$port" \
    IRON_PROJECT_ID=4ccf2c5da3c0f1a4d1000011 \
    IRON_TOKEN=abc4c7c627376858 \
    "$work/venv/bin/python" "$root/tests/python/iron_client.py"

kill -TERM "$server_pid"
wait "$server_pid"
server_pid=""
echo "1 passed, 0 failed"
