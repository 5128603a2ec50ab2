"""The official IronCache python client (PyPI `iron-cache`) against a running ttlcask.

Configured only through the environment (IRON_CACHE_PROTOCOL/HOST/PORT, IRON_PROJECT_ID,
IRON_TOKEN); run it through tests/python/run.sh, which isolates HOME and the working dir.
Exits non-zero on the first failed check.
"""

import sys

import iron_cache
import requests

CACHE = "py cache/ü"  # quote_plus turns the space into '+', '/' into %2F, ü into %C3%BC
# The server keeps '+' literal (as the real service did), so the space arrives as '+'.
SERVER_NAME = "py+cache/ü"


def check(label, got, expected):
    if got != expected:
        print(f"FAIL {label}: got {got!r}, expected {expected!r}")
        sys.exit(1)
    print(f"ok   {label}")


def main():
    cache = iron_cache.IronCache(name=CACHE)

    cache.put("greeting", "hello")
    item = cache.get("greeting")
    check("get string", (item.cache, item.key, item.value), (SERVER_NAME, "greeting", "hello"))

    cache.put("n", 2)
    check("number stays a number", cache.get("n").value, 2)
    check("increment", cache.increment("n").value, 3)
    check("increment by 10", cache.increment("n", amount=10).value, 13)
    check("decrement", cache.decrement("n", amount=4).value, 9)
    check("increment creates", cache.increment("fresh", amount=5).value, 5)

    try:
        cache.increment("greeting")
        check("increment of a string raises", "no error", "HTTPError 400")
    except requests.exceptions.HTTPError as e:
        check("increment of a string is 400", e.response.status_code, 400)
        check("its message", e.response.json()["msg"], "Cannot increment or decrement non-numeric value")

    cache.put("other-key+/", "x", options={"expires_in": 60})
    check("key with plus and slash", cache.get("other-key+/").value, "x")

    check("delete", cache.delete("greeting"), True)
    try:
        cache.get("greeting")
        check("get after delete raises", "no error", "HTTPError 404")
    except requests.exceptions.HTTPError as e:
        check("get after delete is 404", e.response.status_code, 404)

    # Clear, info and list are not in the client: use its own transport (same auth and base URL).
    quoted = iron_cache.quote_plus(CACHE)
    reply = cache.client.post("caches/%s/clear" % quoted)
    check("clear", reply["body"], {"msg": "Cleared."})
    check("size after clear", cache.client.get("caches/%s" % quoted)["body"], {"size": 0})
    names = [c["name"] for c in cache.client.get("caches")["body"]]
    check("cache listed", SERVER_NAME in names, True)
    try:
        cache.get("n")
        check("get after clear raises", "no error", "HTTPError 404")
    except requests.exceptions.HTTPError as e:
        check("get after clear is 404", e.response.status_code, 404)

    print("iron_client.py: all checks passed")


if __name__ == "__main__":
    main()
