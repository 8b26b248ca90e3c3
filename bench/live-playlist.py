#!/usr/bin/env python3
"""A live HLS playlist under `stale: ["updating"]`: VIEWERS players poll a 1-second playlist
(cached for 1 s) through an edge whose origin takes ORIGIN_MS to answer, for SECONDS. With
`updating` (nginx's `proxy_cache_use_stale updating` + `proxy_cache_background_update on`) no
viewer waits on the origin after the first fill: each expiry is refreshed in the background while
everyone gets the stored copy. Prints p50/p99/max of the playlist requests after the first fill
and the origin's request count, for tollgate, tollgate without the option (every expiry stalls
the viewers that come during the refresh), and Debian's nginx configured the same way (when
installed), in the same run.

    cargo build --release -p tollgate
    bench/live-playlist.py --viewers 100 --seconds 20 --origin-ms 500
"""
import argparse
import hashlib
import base64
import http.client
import http.server
import json
import os
import shutil
import socket
import socketserver
import subprocess
import tempfile
import threading
import time

BIN = os.environ.get("TOLLGATE_BIN") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "tollgate")
KEY = "live_secret_key"
HOST = "live.example.com"
PATH = "/live/index.m3u8"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def signed(path, expires):
    digest = hashlib.md5(("%d%s %s" % (expires, path, KEY)).encode()).digest()
    token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return "%s?md5=%s&expires=%d" % (path, token, expires)


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    delay = 0.5
    hits = 0
    lock = threading.Lock()

    def do_GET(self):
        with Origin.lock:
            Origin.hits += 1
        time.sleep(Origin.delay)
        seq = int(time.time())
        body = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:%d\n" % seq
        body += "".join("#EXTINF:1.0,\nseg%d.ts\n" % (seq + i) for i in range(6))
        body = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.apple.mpegurl")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


class ThreadedServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # an edge closing an idle origin connection is not news


def viewers(port, n, seconds, target):
    """n threads polling target once a second on keep-alive connections; latencies (s) of the
    requests after the first second."""
    lat, errors = [], []
    lock = threading.Lock()
    start = time.time() + 0.2

    def run(i):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        t_next = start + (i / n)
        end = start + seconds
        while t_next < end:
            time.sleep(max(0, t_next - time.time()))
            t0 = time.perf_counter()
            try:
                c.request("GET", target, headers={"Host": HOST})
                r = c.getresponse()
                r.read()
                ok = r.status == 200
            except Exception as e:  # noqa: BLE001 - counted, the run goes on
                ok = False
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            dt = time.perf_counter() - t0
            with lock:
                if not ok:
                    errors.append(i)
                elif time.time() - start > 1.0:
                    lat.append(dt)
            t_next += 1.0

    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return lat, len(errors)


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * p))] if xs else float("nan")


def wait_port(port, proc=None):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit("the server exited: %s" % proc.args)
            time.sleep(0.05)
    raise SystemExit("port %d never opened" % port)


def run_tollgate(work, origin_port, stale):
    options = {"secure_key": {"enabled": True, "key": KEY, "type": 2},
               "edge_cache_settings": {"enabled": True, "value": "1s"}}
    if stale:
        options["stale"] = {"enabled": True, "value": ["updating", "error", "timeout"]}
    res = [{"id": 1, "cname": HOST, "origin": "127.0.0.1:%d" % origin_port, "options": options}]
    path = os.path.join(work, "resources-%s.json" % stale)
    with open(path, "w") as f:
        json.dump(res, f)
    port = free_port()
    p = subprocess.Popen([BIN, "edge", "--resources", path, "--listen", "127.0.0.1:%d" % port],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return p, port


def run_nginx(work, origin_port):
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if not nginx:
        return None, None
    port = free_port()
    d = os.path.join(work, "nginx")
    os.makedirs(d, exist_ok=True)
    conf = """worker_processes 1; user root; pid %(d)s/nginx.pid; error_log %(d)s/error.log warn;
events { worker_connections 1024; }
http { access_log off; tcp_nopush off;
  proxy_cache_path %(d)s/cache keys_zone=c:4m use_temp_path=off;
  client_body_temp_path %(d)s/body; proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fastcgi; uwsgi_temp_path %(d)s/uwsgi; scgi_temp_path %(d)s/scgi;
  server { listen 127.0.0.1:%(port)d;
    location / {
      secure_link $arg_md5,$arg_expires;
      secure_link_md5 "$secure_link_expires$uri %(key)s";
      if ($secure_link = "")  { return 403; }
      if ($secure_link = "0") { return 410; }
      proxy_pass http://127.0.0.1:%(origin)d; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache c; proxy_cache_key $uri; proxy_cache_valid 200 1s;
      proxy_cache_use_stale updating error timeout; proxy_cache_background_update on;
      proxy_cache_lock on; } } }
""" % {"d": d, "port": port, "origin": origin_port, "key": KEY}
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(conf)
    p = subprocess.Popen([nginx, "-p", d, "-c", os.path.join(d, "nginx.conf"), "-e",
                          os.path.join(d, "error.log"), "-g", "daemon off;"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port, p)
    return p, port


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--viewers", type=int, default=100)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--origin-ms", type=int, default=500)
    a = ap.parse_args()
    Origin.delay = a.origin_ms / 1000.0
    origin = ThreadedServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    work = tempfile.mkdtemp(prefix="tollgate-live-")
    target = signed(PATH, int(time.time()) + 3600)
    rows = []
    runs = [("tollgate, stale updating", lambda: run_tollgate(work, origin.server_port, True)),
            ("tollgate, no stale option", lambda: run_tollgate(work, origin.server_port, False)),
            ("nginx, use_stale updating", lambda: run_nginx(work, origin.server_port))]
    for name, start in runs:
        proc, port = start()
        if proc is None:
            print("%s: not installed, skipped" % name)
            continue
        try:
            before = Origin.hits
            lat, errors = viewers(port, a.viewers, a.seconds, target)
            rows.append((name, lat, errors, Origin.hits - before))
        finally:
            proc.terminate()
            proc.wait()
    print("%d viewers polling a 1 s playlist for %d s, origin %d ms:" % (
        a.viewers, a.seconds, a.origin_ms))
    print("| edge | requests | p50 ms | p99 ms | max ms | errors | origin requests |")
    print("|---|---|---|---|---|---|---|")
    for name, lat, errors, hits in rows:
        print("| %s | %d | %.2f | %.2f | %.1f | %d | %d |" % (
            name, len(lat), pct(lat, 0.5) * 1000, pct(lat, 0.99) * 1000, max(lat) * 1000,
            errors, hits))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
