#!/usr/bin/env python3
"""How long a change made through the API takes to be enforced by a running edge.

Starts `tollgate serve` (release build), a local origin, and a resource; then, ROUNDS times,
flips the resource's secure token on or off with PATCH and polls the edge (without a token)
until its answer flips between 403 and 200. Prints the distribution in milliseconds.

    cargo build --release -p tollgate && bench/config-propagation.py [ROUNDS]
"""
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 200
TOKEN = "tg_bench_token_0123456789abcdef"
BIN = os.path.join(os.path.dirname(__file__), "..", "target", "release", "tollgate")


class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


def main():
    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    data = tempfile.mkdtemp(prefix="tollgate-bench-")
    serve = subprocess.Popen(
        [BIN, "serve", "--data", data, "--control-listen", "127.0.0.1:0",
         "--edge-listen", "127.0.0.1:0", "--api-token", TOKEN],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    control = edge = None
    for line in serve.stdout:
        if m := re.search(r"Panel and API: http://127.0.0.1:(\d+)/", line):
            control = int(m.group(1))
        if m := re.search(r"listening on 127.0.0.1:(\d+)", line):
            edge = int(m.group(1))
        if control and edge:
            break
    threading.Thread(target=lambda: [None for _ in serve.stdout], daemon=True).start()

    api = http.client.HTTPConnection("127.0.0.1", control)
    cdn = http.client.HTTPConnection("127.0.0.1", edge)

    def call(method, path, body):
        api.request(method, path, json.dumps(body),
                    {"Authorization": "APIKey " + TOKEN, "Content-Type": "application/json"})
        r = api.getresponse()
        r.read()
        assert r.status in (200, 201), r.status

    def status():
        cdn.request("GET", "/x", headers={"Host": "cdn.example.com"})
        r = cdn.getresponse()
        r.read()
        return r.status

    call("POST", "/cdn/resources", {"cname": "cdn.example.com",
                                    "origin": "127.0.0.1:%d" % origin.server_address[1]})
    while status() != 200:
        time.sleep(0.01)
    took = []
    for i in range(ROUNDS):
        on = i % 2 == 0
        sk = {"enabled": True, "key": "secret_key", "type": 2} if on else {"enabled": False}
        start = time.perf_counter()
        call("PATCH", "/cdn/resources/1", {"options": {"secure_key": sk}})
        want = 403 if on else 200
        while status() != want:
            pass
        took.append((time.perf_counter() - start) * 1000)
    serve.terminate()
    serve.wait()
    took.sort()
    pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
    print("config propagation over %d changes (PATCH sent -> edge enforces), ms: "
          "p50 %.2f  p95 %.2f  p99 %.2f  max %.2f" % (ROUNDS, pick(0.5), pick(0.95), pick(0.99), took[-1]))


if __name__ == "__main__":
    main()
