#!/usr/bin/env python3
"""How long Gcore's list calls take with many resources: the SDK's first page
(`GET /cdn/resources?limit=1000`), a lookup by hostname (`?cname=...&limit=1000`, what a script
that updates one resource does), a filter with no match, and the whole bare list (what Gcore's Go
client reads).

Starts `tollgate control` with RESOURCES resources (the first through the API, the rest written
into its SQLite database as bench/config-propagation.py does), then times each call ROUNDS
times. Prints p50, p99 and the answer's size.

    cargo build --release -p tollgate
    bench/api-list.py --resources 100000 --rounds 20
"""
import argparse
import http.client
import importlib.util
import os
import time

spec = importlib.util.spec_from_file_location(
    "propagation", os.path.join(os.path.dirname(os.path.abspath(__file__)), "config-propagation.py"))
prop = importlib.util.module_from_spec(spec)
spec.loader.exec_module(prop)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--resources", type=int, default=100000)
    ap.add_argument("--rounds", type=int, default=20)
    a = ap.parse_args()
    import tempfile
    work = tempfile.mkdtemp(prefix="tollgate-bench-")
    data = os.path.join(work, "data")
    port = prop.free_port()
    args = ["control", "--data", data, "--listen", "127.0.0.1:%d" % port, "--api-token", prop.TOKEN]
    control = prop.Proc(args)
    control.wait_for(r"Panel and API: http://127.0.0.1:\d+/")
    api = prop.Api(port)
    api.call("POST", "/cdn/resources", {"cname": prop.HOST, "origin": "127.0.0.1:9"})
    if a.resources > 1:
        control.stop()
        prop.seed(os.path.join(data, "tollgate.db"), a.resources)
        control = prop.Proc(args)
        control.wait_for(r"Panel and API: http://127.0.0.1:\d+/")
    middle = "r%d.bench.example" % (a.resources // 2)
    cases = [
        ("SDK first page", "/cdn/resources?limit=1000"),
        ("lookup by cname", "/cdn/resources?cname=%s&limit=1000" % middle),
        ("filter, no match", "/cdn/resources?name=nothing&limit=1000"),
        ("whole bare list", "/cdn/resources"),
    ]
    print("%d resources, %d rounds each" % (a.resources, a.rounds))
    print("| call | p50 | p99 | answer |")
    print("|---|---|---|---|")
    for name, path in cases:
        took, size = [], 0
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        for _ in range(a.rounds):
            t = time.perf_counter()
            conn.request("GET", path, headers={"Authorization": "APIKey " + prop.TOKEN})
            r = conn.getresponse()
            body = r.read()
            took.append((time.perf_counter() - t) * 1000)
            assert r.status == 200, (r.status, body[:200])
            size = len(body)
        took.sort()
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        print("| %s `%s` | %.1f ms | %.1f ms | %.1f MiB |"
              % (name, path, took[len(took) // 2], p99, size / 2**20))
    control.stop()


if __name__ == "__main__":
    main()
