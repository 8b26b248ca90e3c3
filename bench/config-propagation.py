#!/usr/bin/env python3
"""How long a change made through the API takes to be enforced by a running edge.

Starts a control plane (`tollgate control`) and an edge following it (`tollgate edge
--control`), as a fleet runs them, with a local origin and RESOURCES resources (the first made
through the API, the rest written straight into the SQLite database, as a restored backup would
be, since 100,000 API calls would take the bench's whole time). Then, ROUNDS times, flips the
first resource's secure token with PATCH and polls the edge (without a token) until its answer
flips between 403 and 200. With --outage, the control plane is stopped with SIGKILL before
each change, kept down OUTAGE seconds while the edge retries, and started again; the change is
made as soon as the API answers. Prints the distribution in milliseconds.

    cargo build --release -p tollgate
    bench/config-propagation.py --rounds 200
    bench/config-propagation.py --rounds 100 --resources 100000
    bench/config-propagation.py --rounds 30 --resources 100000 --outage 3
"""
import argparse
import http.client
import http.server
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
import time

TOKEN = "tg_bench_token_0123456789abcdef"
BIN = os.environ.get("TOLLGATE_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "tollgate")
HOST = "cdn.example.com"


class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


class Proc:
    """A tollgate process whose output is read in a thread; `wait_for` finds a line."""

    def __init__(self, args):
        self.p = subprocess.Popen([BIN] + args, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stdout:
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()

    def wait_for(self, pattern, timeout=600, start=0):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for i, line in enumerate(self.lines[start:], start):
                    if m := re.search(pattern, line):
                        return m, i
                left = deadline - time.monotonic()
                if left <= 0 or self.p.poll() is not None:
                    raise SystemExit("no %r in output:\n%s" % (pattern, "".join(self.lines[-20:])))
                self.cond.wait(left)

    def kill(self):
        self.p.send_signal(signal.SIGKILL)
        self.p.wait()

    def stop(self):
        self.p.terminate()
        self.p.wait()


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Api:
    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in range(2000):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                self.conn.request(method, path, json.dumps(body) if body is not None else None,
                                  {"Authorization": "APIKey " + TOKEN,
                                   "Content-Type": "application/json"})
                r = self.conn.getresponse()
                data = r.read()
                assert r.status in (200, 201), (r.status, data)
                return json.loads(data) if data else None
            except (ConnectionError, http.client.HTTPException, OSError):
                # The control plane is starting again after an outage.
                self.conn = None
                time.sleep(0.005)
        raise SystemExit("the API never answered")


def seed(db_path, count):
    """Copies resource 1 into resources 2..count, each with its own hostname."""
    db = sqlite3.connect(db_path)
    (body,) = db.execute("SELECT body FROM resources WHERE id = 1").fetchone()
    (version,) = db.execute("SELECT version FROM config_version").fetchone()
    template = json.loads(body)
    rows, hosts = [], []
    for i in range(2, count + 1):
        r = dict(template, id=i, cname="r%d.bench.example" % i)
        rows.append((i, json.dumps(r, separators=(",", ":")), version))
        hosts.append(("r%d.bench.example" % i, i))
    db.executemany("INSERT INTO resources (id, body, updated_version) VALUES (?, ?, ?)", rows)
    db.executemany("INSERT INTO hostnames (hostname, resource_id) VALUES (?, ?)", hosts)
    db.commit()
    db.close()
    return len(json.dumps(template))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rounds", nargs="?", type=int, help="same as --rounds")
    ap.add_argument("--rounds", dest="rounds_opt", type=int, default=200)
    ap.add_argument("--resources", type=int, default=1)
    ap.add_argument("--outage", type=float, default=0,
                    help="seconds the control plane is down before each change (0: no outage)")
    a = ap.parse_args()
    rounds = a.rounds or a.rounds_opt

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="tollgate-bench-")
    data, state = os.path.join(work, "data"), os.path.join(work, "edge")
    cport = free_port()
    control_args = ["control", "--data", data, "--listen", "127.0.0.1:%d" % cport,
                    "--api-token", TOKEN]
    control = Proc(control_args)
    control.wait_for(r"Panel and API: http://127.0.0.1:\d+/")
    api = Api(cport)
    api.call("POST", "/cdn/resources",
             {"cname": HOST, "origin": "127.0.0.1:%d" % origin.server_address[1]})
    edge_token = api.call("POST", "/tollgate/tokens", {"name": "bench-edge", "role": "edge"})["token"]
    size = 0
    if a.resources > 1:
        control.stop()
        t = time.perf_counter()
        size = seed(os.path.join(data, "tollgate.db"), a.resources)
        print("seeded %d resources (%d bytes of JSON each) in %.1f s"
              % (a.resources, size, time.perf_counter() - t))
        control = Proc(control_args)
        control.wait_for(r"Panel and API: http://127.0.0.1:\d+/")

    t = time.perf_counter()
    edge = Proc(["edge", "--control", "http://127.0.0.1:%d" % cport, "--edge-token", edge_token,
                 "--state-dir", state, "--listen", "127.0.0.1:0"])
    edge.wait_for(r"config version \d+ applied \(%d resources" % a.resources)
    eport = int(edge.wait_for(r"listening on 127.0.0.1:(\d+)")[0].group(1))
    print("edge took its first snapshot in %.2f s" % (time.perf_counter() - t))
    cdn = http.client.HTTPConnection("127.0.0.1", eport)

    def status():
        cdn.request("GET", "/x", headers={"Host": HOST})
        r = cdn.getresponse()
        r.read()
        return r.status

    while status() != 200:
        time.sleep(0.01)
    took, answered = [], []
    for i in range(rounds):
        if a.outage:
            control.kill()
            time.sleep(a.outage)
            control = Proc(control_args)
            control.wait_for(r"Panel and API: http://127.0.0.1:\d+/")
            api.conn = None
        on = i % 2 == 0
        sk = {"enabled": True, "key": "secret_key", "type": 2} if on else {"enabled": False}
        want = 403 if on else 200
        start = time.perf_counter()
        api.call("PATCH", "/cdn/resources/1", {"options": {"secure_key": sk}})
        answered.append((time.perf_counter() - start) * 1000)
        while status() != want:
            pass
        took.append((time.perf_counter() - start) * 1000)
    rss = 0
    with open("/proc/%d/status" % edge.p.pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) // 1024
    applies = sorted(float(m.group(1)) for line in edge.lines
                     if (m := re.search(r"delta: .*; ([\d.]+) ms\)", line)))
    edge.stop()
    control.stop()
    shutil.rmtree(work, ignore_errors=True)
    took.sort()
    pick = lambda q: took[min(len(took) - 1, int(q * len(took)))]
    print("config propagation, %d resources%s, over %d changes (PATCH sent -> edge enforces), ms: "
          "p50 %.2f  p95 %.2f  p99 %.2f  max %.2f; edge RSS %d MiB"
          % (a.resources, ", %.1f s outage before each" % a.outage if a.outage else "",
             rounds, pick(0.5), pick(0.95), pick(0.99), took[-1], rss))
    answered.sort()
    print("of which the API answering the PATCH (validate, write, fsync), ms: p50 %.2f  max %.2f"
          % (answered[len(answered) // 2], answered[-1]))
    if applies:
        print("of which the edge applying each delta (validate, index, swap routes), ms: "
              "p50 %.2f  max %.2f" % (applies[len(applies) // 2], applies[-1]))


if __name__ == "__main__":
    main()
