#!/usr/bin/env bash
# Runs the official IronCache python client (PyPI iron-cache) against `ttlcask serve --dev`
# on a free loopback port with a temp data dir; HOME and the working dir are isolated so
# that no ~/.iron.json or ./iron.json changes the client's configuration.
set -euo pipefail

source "$(cd "$(dirname "$0")" && pwd)/../support/dev-server.sh"
start_dev_server

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
