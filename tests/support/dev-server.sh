# Sourced by the test scripts under tests/: builds `ttlcask`, gives a temp work dir that is
# removed on exit (with the server stopped), and `start_dev_server [serve args…]` starts
# `ttlcask serve --dev --durability never` on a free loopback port and waits for /healthz
# (exits with the server's log if it never answers). Sets: root, bin, work, port, base.
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
cargo build --quiet --bin ttlcask
bin="${CARGO_TARGET_DIR:-$root/target}/debug/ttlcask"

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

start_dev_server() {
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
    base="http://127.0.0.1:$port"
    "$bin" serve --dev --listen "127.0.0.1:$port" --data-dir "$work/data" --durability never \
        "$@" >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        if python3 -c "import urllib.request; urllib.request.urlopen('$base/healthz', timeout=1)" 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "ttlcask did not become healthy; its log:" >&2
    cat "$work/server.log" >&2
    exit 1
}
