#!/usr/bin/env bash
# Renders the status page (/) in headless Chromium: installs Debian's chromium if missing,
# starts `ttlcask serve --dev` on a free loopback port with a temp data dir and one stored
# item, takes a screenshot (kept, path printed: the CI artifact) and checks the DOM text:
# the --dev warning, durability, data dir, storage health and the three traffic charts.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
source "$root/tests/support/dev-server.sh"
artifacts="$root/target/browser"
mkdir -p "$artifacts"
start_dev_server
# One Akka item (the document's sample JWT, tenant ttorg) so the tenant table has a row.
jwt='eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJodHRwczovL3Nlc3Npb24uZmlyZWJhc2UuZ29vZ2xlLmNvbS9ha2thLWNhY2hlIiwib3JnIjoidHRvcmciLCJuYW1lIjoiSm9obiBEb2UiLCJzZXJ2aWNlTGV2ZWwiOiJmcmVlIn0.rds8orVxVz149ovTxxYzFIqGmSdWJUlHONem9avKBgQ'
python3 - "$base" "$jwt" <<'PY'
import sys, urllib.request
base, jwt = sys.argv[1], sys.argv[2]
req = urllib.request.Request(f"{base}/browser-demo/k1", data=b"hello", method="POST",
    headers={"Authorization": f"Bearer {jwt}", "Content-Type": "application/octet-stream"})
assert urllib.request.urlopen(req, timeout=5).status == 201
urllib.request.urlopen(urllib.request.Request(f"{base}/browser-demo/k1",
    headers={"Authorization": f"Bearer {jwt}"}), timeout=5).read()
PY
# The charts are filled by a once-a-second timer: let it sample the requests above.
sleep 2

flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run
       --disable-background-networking --disable-component-update --disable-sync)
shot="$artifacts/status-page.png"
rm -f "$shot"
timeout 120 chromium "${flags[@]}" --user-data-dir="$work/profile1" --window-size=1280,900 \
    --screenshot="$shot" "$base/" >"$work/chromium.log" 2>&1 || true
size=$(stat -c %s "$shot" 2>/dev/null || echo 0)
if [ "$size" -lt 5000 ]; then
    echo "screenshot missing or trivial ($size bytes); chromium said:" >&2
    cat "$work/chromium.log" >&2
    exit 1
fi
timeout 120 chromium "${flags[@]}" --user-data-dir="$work/profile2" --dump-dom "$base/" \
    >"$work/dom.html" 2>>"$work/chromium.log"
for text in "ttlcask 0" "Hit rate" "100.0% (1 hit, 0 misses)" "Compaction: idle" \
            "ttorg" "browser-demo" "Akka Cache" "Storage health" "Recovery at open: clean" \
            "Development mode" "<code>never</code></b>: the operating system decides" "Data dir:" \
            "free on its file system" 'id="chart-requests"' 'id="chart-p99"' 'id="chart-hit-rate"'; do
    if ! grep -qF "$text" "$work/dom.html"; then
        echo "status page DOM lacks: $text" >&2
        cat "$work/dom.html" >&2
        exit 1
    fi
done
echo "status page rendered; screenshot: $shot ($size bytes)"
