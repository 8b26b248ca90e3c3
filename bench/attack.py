#!/usr/bin/env python3
"""The hardening attack of issue 13, as a repeatable script.

Starts a misbehaving origin (http.server in a thread), `tollgate serve` with a temporary
--data directory, two resources (one with a secure token), then runs eight sections, each
printing one summary line with figures:

  1. malformed and smuggling-shaped HTTP/1 requests over raw sockets, to the edge and to the
     control plane, each followed by a normal request (the process must still answer it)
  2. slowloris against both listeners (how long until they cut it; a normal client meanwhile)
  3. connection floods (the per-address cap from one address; many addresses under the cap)
  4. single flight: 200 concurrent viewers of one cold object from a slow origin
  5. faulty origins: reset mid-body, short body, no answer, dripping, 1 MiB header, ...
  6. kill -9 of `tollgate control` while writers are acknowledged, restart, nothing lost
  7. no key and no token in any process output, log file or the audit log
  8. resident memory and open descriptors of the serve process before and after each section

Exits 1 if there is any finding (a crash, a 5xx or no answer to a normal request, a desync,
a lost write, a key in a log, more than one origin fetch for one object), 0 otherwise.

    cargo build --release -p tollgate && bench/attack.py
    TOLLGATE_BIN=/path/to/tollgate bench/attack.py      # another build
    ATTACK_VERBOSE=1 bench/attack.py                     # every malformed case's answer

Python 3 standard library only. Takes about two minutes.
"""
import atexit
import base64
import collections
import hashlib
import http.client
import http.server
import json
import os
import random
import re
import resource
import select
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if os.environ.get("TOLLGATE_BIN"):
    BIN = os.environ["TOLLGATE_BIN"]
elif os.environ.get("CARGO_TARGET_DIR"):
    BIN = os.path.join(os.environ["CARGO_TARGET_DIR"], "release", "tollgate")
else:
    BIN = os.path.join(ROOT, "target", "release", "tollgate")
VERBOSE = os.environ.get("ATTACK_VERBOSE") == "1"

TOKEN = "tg_attack_token_" + os.urandom(8).hex()
WRONG_TOKEN = "tg_wrong_token_" + os.urandom(8).hex()
KEY = "secret_key_1234"
ROTATED_KEY = "rotated_key_" + os.urandom(4).hex()
BAD_KEY = "bad key " + os.urandom(4).hex()       # refused (whitespace): must not be logged either
CNAME = "cdn.example.com"
SECURE_CNAME = "secure.example.com"

# Edge settings the figures depend on (printed in the header line).
HEADER_TIMEOUT = 10
ORIGIN_READ_TIMEOUT = 3
ORIGIN_TOTAL_TIMEOUT = 8
PER_IP = 256

FINDINGS = []
T0 = time.monotonic()


def finding(section, what, repro=""):
    FINDINGS.append((section, what, repro))
    log("  FINDING [%s] %s%s" % (section, what, ("\n    repro: " + repro) if repro else ""))


LOG_LOCK = threading.Lock()


def log(*a):
    with LOG_LOCK:
        print(*a, flush=True)


# ---------------------------------------------------------------- origin

HITS = collections.Counter()
HITS_LOCK = threading.Lock()
STOP = threading.Event()
SLOW_DELAY = 1.5


class Origin(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        path = self.path.split("?")[0]
        with HITS_LOCK:
            HITS[path] += 1
        kind = path.split("/")[1].split("-")[0] if path.count("/") else ""
        try:
            getattr(self, "o_" + kind, self.o_default)(path)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True

    def ok(self, body, cache="max-age=300", extra=()):
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", cache)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def o_default(self, path):
        self.ok(("origin: %s\n" % path).encode())

    def o_slow(self, path):                     # single flight: a slow cold object
        time.sleep(SLOW_DELAY)
        self.ok(b"s" * 65536)

    def o_reset(self, path):                    # RST in the middle of the body
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nCache-Control: max-age=300\r\n\r\n"
                 + b"r" * 1000)
        time.sleep(0.2)
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True

    def o_short(self, path):                    # Content-Length says 1000, 10 bytes, close
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\nCache-Control: max-age=300\r\n\r\n"
                 + b"0123456789")
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def o_long(self, path):                     # Content-Length says 10, 1000 bytes follow
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nCache-Control: max-age=300\r\n\r\n"
                 + b"L" * 1000)
        self.close_connection = True

    def o_hang(self, path):                     # accepts, never answers
        STOP.wait(40)
        self.close_connection = True

    def o_hanghead(self, path):                 # half a status line, then nothing
        self.raw(b"HTTP/1.1 200 O")
        STOP.wait(40)
        self.close_connection = True

    def o_drip(self, path):                     # 1 byte a second, 30 bytes
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nCache-Control: max-age=300\r\n\r\n")
        for _ in range(30):
            if STOP.wait(1):
                break
            self.raw(b"d")
        self.close_connection = True

    def o_driphead(self, path):                 # the response head, 1 byte a second
        for b in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
            if STOP.wait(1):
                break
            self.raw(bytes([b]))
        self.close_connection = True

    def o_bighdr(self, path):                   # a 1 MiB header
        self.raw(b"HTTP/1.1 200 OK\r\nX-Big: " + b"h" * (1 << 20) + b"\r\nContent-Length: 2\r\n\r\nok")

    def o_manyhdr(self, path):                  # 10,000 headers
        self.raw(b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(10000))
                 + b"Content-Length: 2\r\n\r\nok")

    def o_badchunk(self, path):                 # a chunk size that is not hex
        self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=300\r\n\r\n"
                 b"5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n")
        self.close_connection = True

    def o_hugechunk(self, path):                # a chunk size that overflows 64 bits
        self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n")
        self.close_connection = True

    def o_cutchunk(self, path):                 # chunked, closed before the last chunk
        self.raw(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: max-age=300\r\n\r\n"
                 b"a\r\n0123456789\r\n")
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def o_badcl(self, path):                    # Content-Length: abc
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nok")
        self.close_connection = True

    def o_twocl(self, path):                    # two different Content-Lengths
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello")
        self.close_connection = True

    def o_clte(self, path):                     # Content-Length and chunked together
        self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
                 b"Cache-Control: max-age=300\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
        self.close_connection = True

    def o_garbage(self, path):                  # not HTTP at all
        self.raw(b"SSH-2.0-OpenSSH_9.2\r\n\x00\x01\x02garbage\r\n\r\n")
        self.close_connection = True

    def o_empty(self, path):                    # closes without a byte
        self.connection.shutdown(socket.SHUT_RDWR)
        self.close_connection = True

    def o_status(self, path):                   # a status line with a three-letter code
        self.raw(b"HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok")
        self.close_connection = True

    def o_nul(self, path):                      # NUL in a response header
        self.raw(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok")
        self.close_connection = True


class OriginServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

    def handle_error(self, request, client_address):
        pass


# ---------------------------------------------------------------- helpers

def rss(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            kb = int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        return kb / 1024, len(os.listdir("/proc/%d/fd" % pid))
    except (OSError, AttributeError):
        return float("nan"), -1


CHILDREN = []


@atexit.register
def _reap():
    for p in CHILDREN:
        if p.poll() is None:
            p.kill()
            p.wait()


class Proc:
    """A tollgate process, its output kept in a file and scanned for its ports."""

    def __init__(self, args, out_path, want):
        self.out_path = out_path
        self.out = open(out_path, "ab")
        self.p = subprocess.Popen([BIN] + args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        CHILDREN.append(self.p)
        self.ports = {}
        deadline = time.monotonic() + 20
        pats = {"control": rb"Panel and API: http://127\.0\.0\.1:(\d+)/",
                "edge": rb"listening on 127\.0\.0\.1:(\d+)",
                "admin": rb"admin on 127\.0\.0\.1:(\d+)"}
        while not all(k in self.ports for k in want):
            line = self.p.stdout.readline()
            if not line or time.monotonic() > deadline:
                raise SystemExit("tollgate %s did not start: %r" % (args[0], line))
            self.out.write(line)
            for k, pat in pats.items():
                if m := re.search(pat, line):
                    self.ports[k] = int(m.group(1))
        self.out.flush()
        self.pump = threading.Thread(target=self._pump, daemon=True)
        self.pump.start()

    def _pump(self):
        for line in self.p.stdout:
            self.out.write(line)
            self.out.flush()

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM):
        if self.alive():
            self.p.send_signal(sig)
        try:
            self.p.wait(35)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
        self.pump.join(5)
        self.out.close()


def http_get(port, path, host, timeout=5, src=None, headers=None):
    """One request on a fresh connection: (status, body, headers, seconds) or (None, error, {}, s)."""
    t = time.monotonic()
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                   source_address=(src, 0) if src else None)
    try:
        h = {"Host": host}
        h.update(headers or {})
        c.request("GET", path, headers=h)
        r = c.getresponse()
        body = r.read()
        return r.status, body, dict(r.getheaders()), time.monotonic() - t
    except Exception as e:  # noqa: BLE001 - any failure is an outcome here
        return None, repr(e), {}, time.monotonic() - t
    finally:
        c.close()


def api(port, method, path, body=None, token=TOKEN, conn=None, timeout=10):
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, json.dumps(body) if body is not None else None,
                  {"Authorization": "APIKey " + token, "Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        try:
            return r.status, json.loads(data) if data else None
        except ValueError:
            return r.status, data
    finally:
        if conn is None:
            c.close()


def sign(key, path, expires):
    digest = hashlib.md5(("%d%s %s" % (expires, path, key)).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def parse_responses(data):
    """The status codes of the HTTP/1 responses in data, in order (best effort)."""
    out = []
    i = 0
    while True:
        m = re.compile(rb"HTTP/\d\.\d (\d{3})[^\r\n]*\r?\n").match(data, i)
        if not m:
            break
        end = data.find(b"\r\n\r\n", i)
        if end < 0:
            out.append(int(m.group(1)))
            break
        head = data[i:end].decode("latin-1").lower()
        status = int(m.group(1))
        out.append(status)
        i = end + 4
        if 100 <= status < 200 or status in (204, 304):
            continue
        if re.search(r"\ntransfer-encoding:[^\n]*chunked", head):
            while True:
                e = data.find(b"\r\n", i)
                if e < 0:
                    return out
                try:
                    n = int(data[i:e].split(b";")[0], 16)
                except ValueError:
                    return out
                i = e + 2 + n + 2
                if n == 0:
                    break
        elif m2 := re.search(r"\ncontent-length:\s*(\d+)", head):
            i += int(m2.group(1))
        else:
            break
    return out


def raw_exchange(port, data, wait=1.0, tail=0.5, src=None):
    """Sends data, reads until the server closes or `wait` s pass without a byte; then half-closes
    and reads `tail` s more. Returns (bytes read, how: eof | reset | held | refused)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5,
                                     source_address=(src, 0) if src else None)
    except OSError:
        return b"", "refused"
    got = bytearray()
    how = "held"
    try:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        s.settimeout(0.05)
        last = time.monotonic()
        halfclosed = False
        while True:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    how = "eof"
                    break
                got += chunk
                last = time.monotonic()
            except socket.timeout:
                idle = time.monotonic() - last
                if not halfclosed and idle > (wait if not got else 0.25):
                    try:
                        s.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    halfclosed = True
                    last = time.monotonic()
                elif halfclosed and idle > tail:
                    how = "held"
                    break
            except ConnectionResetError:
                how = "reset"
                break
    finally:
        s.close()
    return bytes(got), how


# ---------------------------------------------------------------- 1. malformed requests

def malformed_cases():
    """(name, template, smuggle). {H} Host, {P} a normal path, {S} the smuggled request's path.
    smuggle: the request's framing is ambiguous (CL with TE, two CLs, ...): a server that answers
    more than one response on that connection, or whose origin sees {S}, has desynchronised."""
    C = []

    def add(name, t, smuggle=False):
        C.append((name, t.encode("latin-1") if isinstance(t, str) else t, smuggle))


    smug = "GET {S} HTTP/1.1\r\nHost: {H}\r\n\r\n"
    # --- framing: CL and TE together, TE variants (CL.TE: the CL covers the smuggled request)
    def clte(te, method="POST", version="HTTP/1.1"):
        return ("%s {P} %s\r\nHost: {H}\r\nContent-Length: {CLALL}\r\nTransfer-Encoding: %s\r\n\r\n"
                "0\r\n\r\n%s" % (method, version, te, smug))
    for te in ["chunked", "chunked, identity", "identity, chunked", "identity", "gzip, chunked",
               "chunked, gzip", "chunked, chunked", "Chunked", "CHUNKED", "xchunked", "chunkedx",
               " chunked", "chunked ", "\tchunked", "chunked\x0b", "\"chunked\"", "chunked;q=1",
               "chunk", ""]:
        add("CL+TE %r" % te, clte(te), True)
    add("CL+TE GET", clte("chunked", "GET"), True)
    add("CL+TE HTTP/1.0", clte("chunked", version="HTTP/1.0"), True)
    add("TE.CL (CL 4, chunk holds a request)", lambda H, P, S: (
        "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        "%x\r\n%s\r\n0\r\n\r\n" % (P, H, len(smug.format(S=S, H=H)), smug.format(S=S, H=H))).encode(), True)
    add("TE obs-fold + CL",
        "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: {CLALL}\r\nTransfer-Encoding:\r\n chunked\r\n\r\n"
        "0\r\n\r\n" + smug, True)
    add("TE twice (chunked, identity) + CL",
        "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: {CLALL}\r\nTransfer-Encoding: chunked\r\n"
        "Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smug, True)
    add("'Transfer-Encoding :' (space before colon) + CL",
        "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: {CLALL}\r\nTransfer-Encoding : chunked\r\n\r\n"
        "0\r\n\r\n" + smug, True)
    add("Transfer_Encoding + CL",
        "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: {CLALL}\r\nTransfer_Encoding: chunked\r\n\r\n"
        "0\r\n\r\n" + smug, True)
    add("TE chunked, no CL, pipelined (legitimate)",
        "POST {P} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        "GET {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    # --- Content-Length
    add("two CL differing", "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0\r\n"
        "Content-Length: {CLALL}\r\n\r\n" + smug, True)
    add("two CL differing (other order)", "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: {CLALL}\r\n"
        "Content-Length: 0\r\n\r\n" + smug, True)
    add("CL list '0, 40'", "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0, {CLALL}\r\n\r\n" + smug, True)
    add("CL list '5, 5'", "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 5, 5\r\n\r\nhello")
    for cl in ["-1", "-0", "+5", "0x5", "5 5", "", "1e3", "99999999999999999999",
               "18446744073709551616", "18446744073709551615", "9223372036854775808", " 5 ", "5\x00"]:
        add("CL %r" % cl, "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: %s\r\n\r\nhello" % cl)
    add("GET with CL body holding a request", "GET {P} HTTP/1.1\r\nHost: {H}\r\n"
        "Content-Length: {CLALL}\r\n\r\n" + smug, True)
    add("CL larger than the body sent", "POST {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 100\r\n\r\nhello")
    # --- chunk sizes
    for name, body in [("not hex", "zz\r\nhello\r\n0\r\n\r\n"), ("negative", "-5\r\nhello\r\n0\r\n\r\n"),
                       ("0x prefix", "0x5\r\nhello\r\n0\r\n\r\n"),
                       ("overflowing", "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
                       ("u64 max", "ffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
                       ("leading space", " 5\r\nhello\r\n0\r\n\r\n"),
                       ("huge extension", "5;" + "e" * 20000 + "\r\nhello\r\n0\r\n\r\n"),
                       ("data longer than size", "5\r\nhelloXX\r\n0\r\n\r\n"),
                       ("bare LF", "5\nhello\n0\n\n"),
                       ("obs-fold trailer", "0\r\nX-T: a\r\n b\r\n\r\n"),
                       ("huge trailer", "0\r\nX-T: " + "t" * 100000 + "\r\n\r\n"),
                       ("last chunk missing", "5\r\nhello\r\n")]:
        add("chunk " + name, "POST {P} HTTP/1.1\r\nHost: {H}\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    # --- header syntax
    add("obs-fold header", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-A: a\r\n b\r\n\r\n")
    add("obs-fold Host", "GET {P} HTTP/1.1\r\nHost:\r\n {H}\r\n\r\n")
    add("bare LF everywhere", "GET {P} HTTP/1.1\nHost: {H}\n\n")
    add("bare LF in one header", "GET {P} HTTP/1.1\r\nHost: {H}\nX-A: b\r\n\r\n")
    add("bare CR in a header", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-A: a\rb\r\n\r\n")
    add("NUL in a header value", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-A: a\x00b\r\n\r\n")
    add("NUL in a header name", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-\x00A: b\r\n\r\n")
    add("NUL in the request line", "GET {P}\x00 HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("control byte in a value", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-A: a\x01\x7fb\r\n\r\n")
    add("obs-text in a value", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-A: \xff\xfe\x80\r\n\r\n")
    add("header without colon", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-A\r\n\r\n")
    add("space in a header name", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX A: b\r\n\r\n")
    add("space before colon (Host)", "GET {P} HTTP/1.1\r\nHost : {H}\r\n\r\n")
    add("empty header name", "GET {P} HTTP/1.1\r\nHost: {H}\r\n: b\r\n\r\n")
    add("non-token header name", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX(A): b\r\n\r\n")
    add("whitespace before first header", "GET {P} HTTP/1.1\r\n Host: {H}\r\n\r\n")
    # --- Host
    add("two Host, same", "GET {P} HTTP/1.1\r\nHost: {H}\r\nHost: {H}\r\n\r\n")
    add("two Host, different", "GET {P} HTTP/1.1\r\nHost: {H}\r\nHost: evil.example\r\n\r\n")
    add("two Host, evil first", "GET {P} HTTP/1.1\r\nHost: evil.example\r\nHost: {H}\r\n\r\n")
    add("no Host (HTTP/1.1)", "GET {P} HTTP/1.1\r\n\r\n")
    add("empty Host", "GET {P} HTTP/1.1\r\nHost:\r\n\r\n")
    add("Host with userinfo", "GET {P} HTTP/1.1\r\nHost: user@{H}\r\n\r\n")
    add("Host with port 99999", "GET {P} HTTP/1.1\r\nHost: {H}:99999\r\n\r\n")
    add("Host with a path", "GET {P} HTTP/1.1\r\nHost: {H}/x\r\n\r\n")
    add("Host with a space", "GET {P} HTTP/1.1\r\nHost: {H} x\r\n\r\n")
    add("Host 10 KiB", "GET {P} HTTP/1.1\r\nHost: " + "h" * 10240 + "\r\n\r\n")
    # --- request target
    add("absolute-form, other host", "GET http://evil.example{P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("absolute-form, same host", "GET http://{H}{P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("absolute-form, other Host header", "GET http://{H}{P} HTTP/1.1\r\nHost: evil.example\r\n\r\n")
    add("absolute-form https", "GET https://{H}{P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("absolute-form with userinfo", "GET http://{H}@evil.example{P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("authority-form CONNECT", "CONNECT evil.example:443 HTTP/1.1\r\nHost: evil.example:443\r\n\r\n")
    add("asterisk-form OPTIONS", "OPTIONS * HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("asterisk with GET", "GET * HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path %00", "GET /%00 HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path a%00b", "GET {P}%00.txt HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path ../", "GET /../../../etc/passwd HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path %2e%2e", "GET /%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path ..%2f", "GET /..%2f..%2fetc%2fpasswd HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path backslashes", "GET /..\\..\\etc\\passwd HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path //", "GET //etc/passwd HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path bad escape %", "GET /% HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path bad escape %zz", "GET /%zz HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path raw 0x80-0xff", "GET /\x80\xff\xfe HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path with a space", "GET /a b HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path with a tab", "GET /a\tb HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path with a fragment", "GET {P}#frag HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("path without slash", "GET alive HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("4096 slashes", "GET " + "/" * 4096 + " HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("10k query parameters", "GET {P}?" + "&".join("a%d=b" % i for i in range(10000))
        + " HTTP/1.1\r\nHost: {H}\r\n\r\n")
    # --- sizes
    add("request line 100 KiB", "GET /" + "a" * 102400 + " HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("request line 1 MiB", "GET /" + "a" * (1 << 20) + " HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("header 100 KiB", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-Big: " + "b" * 102400 + "\r\n\r\n")
    add("header 1 MiB", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-Big: " + "b" * (1 << 20) + "\r\n\r\n")
    add("10k headers", "GET {P} HTTP/1.1\r\nHost: {H}\r\n"
        + "".join("X-H%d: v\r\n" % i for i in range(10000)) + "\r\n")
    add("100 headers (101 with Host)", "GET {P} HTTP/1.1\r\nHost: {H}\r\n"
        + "".join("X-H%d: v\r\n" % i for i in range(100)) + "\r\n")
    add("method 10 KiB", "G" * 10240 + " {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("X-Forwarded-For 64 KiB", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-Forwarded-For: "
        + ", ".join(["1.2.3.4"] * 7000) + "\r\n\r\n")
    add("X-Forwarded-For garbage", "GET {P} HTTP/1.1\r\nHost: {H}\r\nX-Forwarded-For: ::::,%%,300.1.1.1,\x7f\r\n\r\n")
    add("Authorization 64 KiB", "GET /cdn/resources HTTP/1.1\r\nHost: {H}\r\nAuthorization: APIKey "
        + "k" * 65536 + "\r\n\r\n")
    add("Authorization odd scheme", "GET /cdn/resources HTTP/1.1\r\nHost: {H}\r\nAuthorization: APIKey\r\n\r\n")
    # --- versions, methods, protocols
    add("HTTP/0.9", "GET {P}\r\n")
    add("HTTP/0.9 with blank line", "GET {P}\r\n\r\n")
    add("HTTP/2 preface on HTTP/1 port",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
    add("HTTP/1.2", "GET {P} HTTP/1.2\r\nHost: {H}\r\n\r\n")
    add("HTTP/2.0 request line", "GET {P} HTTP/2.0\r\nHost: {H}\r\n\r\n")
    add("HTTP/3.0", "GET {P} HTTP/3.0\r\nHost: {H}\r\n\r\n")
    add("HTTP/1.10", "GET {P} HTTP/1.10\r\nHost: {H}\r\n\r\n")
    add("lowercase http/1.1", "GET {P} http/1.1\r\nHost: {H}\r\n\r\n")
    add("HTTP/01.1", "GET {P} HTTP/01.1\r\nHost: {H}\r\n\r\n")
    add("trailing junk after version", "GET {P} HTTP/1.1 junk\r\nHost: {H}\r\n\r\n")
    add("double space", "GET  {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("tab separators", "GET\t{P}\tHTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("lowercase method", "get {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("method with NUL", "G\x00T {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("method with (", "GE(T {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    for m in ["DELETE", "PUT", "TRACE", "FOO", "PATCH"]:
        add("method " + m, m + " {P} HTTP/1.1\r\nHost: {H}\r\nContent-Length: 0\r\n\r\n")
    add("h2c upgrade", "GET {P} HTTP/1.1\r\nHost: {H}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    add("websocket upgrade", "GET {P} HTTP/1.1\r\nHost: {H}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
    add("TLS ClientHello on plain port", bytes.fromhex(
        "16030100a5010000a10303") + os.urandom(32) + bytes.fromhex("000004130113020100007400000010000e00000b6578616d706c652e636f6d"))
    add("binary garbage", random.Random(13).randbytes(4096))
    add("only CRLFs", "\r\n\r\n\r\n\r\n")
    add("CRLFs before the request line", "\r\n\r\nGET {P} HTTP/1.1\r\nHost: {H}\r\n\r\n")
    add("head never finished", "GET {P} HTTP/1.1\r\nHost: {H}\r\n")
    add("Expect: 100-continue", "POST {P} HTTP/1.1\r\nHost: {H}\r\nExpect: 100-continue\r\n"
        "Content-Length: 5\r\n\r\nhello")
    add("Expect: unknown", "GET {P} HTTP/1.1\r\nHost: {H}\r\nExpect: 42-nonsense\r\n\r\n")
    add("Range: 2000 ranges", "GET {P} HTTP/1.1\r\nHost: {H}\r\nRange: bytes="
        + ",".join("%d-%d" % (i, i) for i in range(2000)) + "\r\n\r\n")
    add("Range overflowing", "GET {P} HTTP/1.1\r\nHost: {H}\r\nRange: bytes=99999999999999999999999-\r\n\r\n")
    add("Range bytes=-0", "GET {P} HTTP/1.1\r\nHost: {H}\r\nRange: bytes=-0\r\n\r\n")
    add("If-None-Match 64 KiB", "GET {P} HTTP/1.1\r\nHost: {H}\r\nIf-None-Match: "
        + ",".join(['"x"'] * 16000) + "\r\n\r\n")
    add("100 pipelined requests", "GET {P} HTTP/1.1\r\nHost: {H}\r\n\r\n" * 100)
    add("Connection: close then a pipelined request",
        "GET {P} HTTP/1.1\r\nHost: {H}\r\nConnection: close\r\n\r\n" + smug, True)
    add("JSON nested 100k deep (API)", "POST /cdn/resources HTTP/1.1\r\nHost: {H}\r\n"
        "Authorization: APIKey {T}\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        + "[" * 100000)
    add("JSON 2 MiB body (API)", "POST /cdn/resources HTTP/1.1\r\nHost: {H}\r\n"
        "Authorization: APIKey {T}\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n"
        + " " * 2097152)
    add("JSON 2 MiB chunked (API)", "POST /cdn/resources HTTP/1.1\r\nHost: {H}\r\n"
        "Authorization: APIKey {T}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + ("10000\r\n" + " " * 65536 + "\r\n") * 32 + "0\r\n\r\n")
    add("JSON invalid UTF-8 (API)", b"POST /cdn/resources HTTP/1.1\r\nHost: {H}\r\nAuthorization: APIKey {T}\r\n"
        b"Content-Type: application/json\r\nContent-Length: {CLALL}\r\n\r\n{\"cname\": \"\xff\xfe\xc0\xaf.example\"}")
    add("PATCH id overflowing (API)", "PATCH /cdn/resources/99999999999999999999999 HTTP/1.1\r\nHost: {H}\r\n"
        "Authorization: APIKey {T}\r\nContent-Length: 2\r\n\r\n{}")
    add("PATCH id -1 (API)", "PATCH /cdn/resources/-1 HTTP/1.1\r\nHost: {H}\r\n"
        "Authorization: APIKey {T}\r\nContent-Length: 2\r\n\r\n{}")
    return C


def render(tmpl, host, path, spath, post_path=None):
    """post_path: for the control plane, requests with a body go to a route that reads it (POST
    /cdn/resources with the API token: the bodies here are never valid JSON, so nothing is made)."""
    if callable(tmpl):
        data = tmpl(host, post_path or path, spath)
        if post_path:
            data = data.replace(b"\r\n", b"\r\nAuthorization: APIKey " + TOKEN.encode() + b"\r\n", 1)
        return data
    if post_path:
        for m in (b"POST", b"PUT", b"PATCH"):
            if tmpl.startswith(m + b" {P} "):
                tmpl = (m + b" " + post_path.encode() + tmpl[len(m) + 4:]).replace(
                    b"Host: {H}\r\n", b"Host: {H}\r\nAuthorization: APIKey {T}\r\n", 1)
    data = (tmpl.replace(b"{H}", host.encode()).replace(b"{P}", path.encode())
            .replace(b"{S}", spath.encode()).replace(b"{T}", TOKEN.encode()))
    head, sep, body = data.partition(b"\r\n\r\n")
    return head.replace(b"{CLALL}", str(len(body)).encode()) + sep + body


def run_malformed(name, port, host, path, smuggle_path, check, src, serve, results, post_path=None):
    cases = malformed_cases()
    r = collections.Counter()
    table = results.setdefault("table", [])
    for i, (cname, tmpl, smuggle) in enumerate(cases):
        spath = smuggle_path % i
        data = render(tmpl, host, path, spath, post_path)
        got, how = raw_exchange(port, data, src=src)
        statuses = parse_responses(got)
        r["cases"] += 1
        if not statuses:
            r["closed" if how in ("eof", "reset") else "held"] += 1
            outcome = how + (" after %d bytes that are not HTTP/1 (%r)" % (len(got), got[:24]) if got else "")
        else:
            first = statuses[0]
            if first == 100 and len(statuses) > 1:
                first = statuses[1]
            r["%dxx" % (first // 100)] += 1
            outcome = ",".join(map(str, statuses[:6])) + ("..x%d" % len(statuses) if len(statuses) > 6 else "") + " " + how
            if first >= 500:
                finding("malformed", "%s: %r answered %s" % (name, cname, outcome),
                        "printf %r | nc 127.0.0.1 PORT" % data[:300])
        if smuggle:
            with HITS_LOCK:
                reached = HITS.get(spath.split("?")[0], 0) if name == "edge" else 0
            n = len([s for s in statuses if s >= 200])
            if reached or n > 1:
                r["desync"] += 1
                finding("malformed", "%s: %r: %d responses on one connection%s (framing ambiguous: "
                        "should be refused, or the connection closed after one)"
                        % (name, cname, n, ", origin saw %s" % spath if reached else ""),
                        "printf %r | nc 127.0.0.1 PORT" % data[:400])
        st, _, _, _ = check()
        if st != 200 or not serve.alive():
            r["followup_failed"] += 1
            finding("malformed", "%s: normal request after %r got %s (alive=%s)"
                    % (name, cname, st, serve.alive()), "printf %r | nc 127.0.0.1 PORT" % data[:300])
        table.append("%-8s %-50s -> %s" % (name, cname[:50], outcome))
        if VERBOSE:
            log("    " + table[-1])
    results[name] = r


# ---------------------------------------------------------------- 2. slowloris

def slowloris(targets, n, client_checks, max_wait):
    """targets: {name: (port, src)}. Opens n connections per target, sends one header byte a
    second. Returns ({name: [seconds until closed or None]}, [latencies of normal requests])."""
    socks = []
    for name, (port, src) in targets.items():
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(src, 0))
            s.setblocking(False)
            socks.append([name, s, time.monotonic(), None])
    payload = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Slow: " + b"a" * 1000
    for entry in socks:
        entry[1].send(payload[:1])
    lat, errors, stop = [], [], threading.Event()

    def client():
        while not stop.is_set():
            for chk in client_checks:
                st, _, _, dt = chk()
                lat.append(dt)
                if st != 200:
                    errors.append(st)
            stop.wait(0.25)
    th = threading.Thread(target=client)
    th.start()
    pos = 1
    start = time.monotonic()
    while time.monotonic() - start < max_wait and any(e[3] is None for e in socks):
        time.sleep(1)
        for e in socks:
            if e[3] is not None:
                continue
            closed = False
            try:
                if e[1].recv(4096) == b"":
                    closed = True
            except BlockingIOError:
                pass
            except OSError:
                closed = True
            if not closed:
                try:
                    e[1].send(payload[pos % len(payload):pos % len(payload) + 1])
                except BlockingIOError:
                    pass
                except OSError:
                    closed = True
            if closed:
                e[3] = time.monotonic() - e[2]
        pos += 1
    stop.set()
    th.join()
    out = collections.defaultdict(list)
    for name, s, _, t in socks:
        out[name].append(t)
        s.close()
    return out, lat, errors


# ---------------------------------------------------------------- 3. connection flood

def open_many(port, srcs, total):
    """Opens `total` connections spread over source addresses; returns the sockets that connected."""
    socks = []
    pending = []
    for i in range(total):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.bind((srcs[i % len(srcs)], 0))
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        pending.append(s)
    poller = select.poll()
    byfd = {s.fileno(): s for s in pending}
    for fd in byfd:
        poller.register(fd, select.POLLOUT)
    deadline = time.monotonic() + 15
    while byfd and time.monotonic() < deadline:
        for fd, _ in poller.poll(1000):
            s = byfd.pop(fd)
            poller.unregister(fd)
            if s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                socks.append(s)
            else:
                s.close()
    for s in byfd.values():
        s.close()
    return socks


def count_held(socks):
    held = 0
    for s in socks:
        try:
            if s.recv(1, socket.MSG_PEEK) == b"":
                continue
            held += 1       # data waiting: not expected, but open
        except BlockingIOError:
            held += 1
        except OSError:
            pass
    return held


def metric(admin, name):
    st, body, _, _ = http_get(admin, "/metrics", "127.0.0.1")
    if st != 200:
        return None
    total = 0
    for line in body.decode().splitlines():
        if line.startswith(name):
            total += float(line.rsplit(" ", 1)[1])
    return total


# ---------------------------------------------------------------- 6. kill -9

def kill9_round(data, rnd, out_path, resource_id_hint):
    ctl = Proc(["control", "--data", data, "--listen", "127.0.0.1:0", "--api-token", TOKEN],
               out_path, ["control"])
    port = ctl.ports["control"]
    if resource_id_hint is None:
        st, body = api(port, "POST", "/cdn/resources", {"cname": "patched.example.com",
                                                          "origin": "127.0.0.1:1", "description": "v0"})
        assert st in (200, 201), (st, body)
        resource_id_hint = body["id"]
    acked = {}            # cname -> id
    acked_lock = threading.Lock()
    last_patch = [None]
    sent_patch = [0]
    patch_acks = [0]
    stop = threading.Event()
    errors = collections.Counter()

    def creator(w):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        n = 0
        while not stop.is_set():
            cname = "r%d-w%d-%d.example.com" % (rnd, w, n)
            n += 1
            try:
                st, body = api(port, "POST", "/cdn/resources",
                               {"cname": cname, "origin": "127.0.0.1:1"}, conn=conn)
            except Exception:  # noqa: BLE001 - the kill cuts requests in flight
                errors["conn"] += 1
                return
            if st in (200, 201) and isinstance(body, dict):
                with acked_lock:
                    acked[cname] = body.get("id")
            else:
                errors[st] += 1

    def patcher():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while not stop.is_set():
            v = sent_patch[0] + 1
            sent_patch[0] = v
            try:
                st, body = api(port, "PATCH", "/cdn/resources/%d" % resource_id_hint,
                               {"description": "v%d" % v}, conn=conn)
            except Exception:  # noqa: BLE001
                return
            if st == 200:
                last_patch[0] = v
                patch_acks[0] += 1
            else:
                errors["patch %s" % st] += 1

    threads = [threading.Thread(target=creator, args=(w,)) for w in range(4)]
    threads.append(threading.Thread(target=patcher))
    for t in threads:
        t.start()
    time.sleep(3.0 + random.random())
    os.kill(ctl.pid, signal.SIGKILL)
    killed_at = len(acked)
    stop.set()
    for t in threads:
        t.join(15)
    ctl.stop()
    ctl = Proc(["control", "--data", data, "--listen", "127.0.0.1:0", "--api-token", TOKEN],
               out_path, ["control"])
    st, listing = api(ctl.ports["control"], "GET", "/cdn/resources")
    ctl.stop()
    if st != 200:
        finding("kill-9", "listing after restart answered %s" % st)
        return resource_id_hint, len(acked), len(acked), 0, 0, errors, killed_at, patch_acks[0]
    stored = {r["cname"]: r for r in listing}
    lost = [c for c in acked if c not in stored or (acked[c] is not None and stored[c]["id"] != acked[c])]
    patched = stored.get("patched.example.com", {}).get("description", "v0")
    pv = int(patched[1:]) if re.fullmatch(r"v\d+", patched or "") else -1
    patch_lost = last_patch[0] is not None and pv < last_patch[0]
    if lost:
        finding("kill-9", "round %d: %d acknowledged creates missing after restart, e.g. %s"
                % (rnd, len(lost), lost[:3]))
    if patch_lost:
        finding("kill-9", "round %d: last acknowledged PATCH was v%d, stored %s" % (rnd, last_patch[0], patched))
    return (resource_id_hint, len(acked), len(lost), last_patch[0] or 0, int(patch_lost), errors, killed_at,
            patch_acks[0])


# ---------------------------------------------------------------- main

def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 65536) if hard != resource.RLIM_INFINITY else 65536
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if not os.access(BIN, os.X_OK):
        raise SystemExit("no tollgate binary at %s (cargo build --release -p tollgate, or set TOLLGATE_BIN)" % BIN)

    origin = OriginServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    oport = origin.server_address[1]
    work = tempfile.mkdtemp(prefix="tollgate-attack-")
    data = os.path.join(work, "serve-data")
    access_log = os.path.join(work, "access.log")
    outputs = []

    serve_out = os.path.join(work, "serve.out")
    outputs.append(serve_out)
    serve = Proc(["serve", "--data", data, "--control-listen", "127.0.0.1:0",
                  "--edge-listen", "127.0.0.1:0", "--admin", "127.0.0.1:0", "--api-token", TOKEN,
                  "--header-timeout", "%ds" % HEADER_TIMEOUT,
                  "--origin-read-timeout", "%ds" % ORIGIN_READ_TIMEOUT,
                  "--origin-total-timeout", "%ds" % ORIGIN_TOTAL_TIMEOUT,
                  "--max-connections-per-ip", str(PER_IP), "--cache-size", "64M",
                  "--access-log", access_log],
                 serve_out, ["control", "edge", "admin"])
    cport, eport, admin = serve.ports["control"], serve.ports["edge"], serve.ports["admin"]
    log("attack: %s serve pid %d, edge :%d, control :%d, admin :%d, origin :%d; header timeout %ds, "
        "origin read/total %d/%ds, per-IP cap %d, RLIMIT_NOFILE %d; work dir %s"
        % (BIN, serve.pid, eport, cport, admin, oport, HEADER_TIMEOUT, ORIGIN_READ_TIMEOUT,
           ORIGIN_TOTAL_TIMEOUT, PER_IP, nofile, work))

    st, body = api(cport, "POST", "/cdn/resources", {"cname": CNAME, "origin": "127.0.0.1:%d" % oport})
    assert st in (200, 201), (st, body)
    st, body = api(cport, "POST", "/cdn/resources", {
        "cname": SECURE_CNAME, "origin": "127.0.0.1:%d" % oport,
        "options": {"secure_key": {"enabled": True, "key": KEY, "type": 2}}})
    assert st in (200, 201), (st, body)
    secure_id = body["id"]
    deadline = time.monotonic() + 10
    while http_get(eport, "/alive", CNAME)[0] != 200 or http_get(eport, "/x", SECURE_CNAME)[0] != 403:
        if time.monotonic() > deadline:
            raise SystemExit("the edge never applied the resources")
        time.sleep(0.05)
    exp = int(time.time()) + 3600
    link = "/signed.txt?md5=%s&expires=%d" % (sign(KEY, "/signed.txt", exp), exp)
    st = http_get(eport, link, SECURE_CNAME)[0]
    if st != 200:
        finding("setup", "a link signed with the resource's key got %s" % st)
    # Exercise the key paths the logs could leak: a wrong token, a refused key, a rotation.
    api(cport, "GET", "/cdn/resources", token=WRONG_TOKEN)
    api(cport, "PATCH", "/cdn/resources/%d" % secure_id,
        {"options": {"secure_key": {"enabled": True, "key": BAD_KEY, "type": 2}}})
    api(cport, "PATCH", "/cdn/resources/%d" % secure_id,
        {"options": {"secure_key": {"enabled": True, "key": ROTATED_KEY, "type": 2, "previous_key": KEY}}})
    api(cport, "PATCH", "/cdn/resources/%d" % secure_id,
        {"options": {"secure_key": {"enabled": True, "key": KEY, "type": 2}}})
    http_get(eport, "/signed.txt?md5=AAAAAAAAAAAAAAAAAAAAAA&expires=%d" % exp, SECURE_CNAME)

    edge_check = lambda src=None: http_get(eport, "/alive", CNAME, src=src)
    ctl_check = lambda src=None: http_get(cport, "/healthz", "127.0.0.1", src=src)
    mem = [("start", *rss(serve.pid))]

    def memline(section):
        mem.append((section, *rss(serve.pid)))
        log("  RSS after %s: %.1f MiB, %d fds" % (section, mem[-1][1], mem[-1][2]))

    log("  RSS at start: %.1f MiB, %d fds" % mem[0][1:])

    # 1 ---------------------------------------------------------------
    t = time.monotonic()
    results = {}
    ths = [threading.Thread(target=run_malformed, args=("edge", eport, CNAME, "/alive", "/smuggled-%d",
                                                        edge_check, "127.0.0.5", serve, results)),
           threading.Thread(target=run_malformed, args=("control", cport, "127.0.0.1:%d" % cport, "/healthz",
                                                        "/healthz?smuggled=%d", ctl_check, "127.0.0.6",
                                                        serve, results, "/cdn/resources"))]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    with open(os.path.join(work, "malformed.txt"), "w") as f:
        f.write("\n".join(results["table"]) + "\n")
    for name in ("edge", "control"):
        r = results[name]
        log("1. malformed [%s]: %d cases: %d answered 4xx, %d 2xx/3xx, %d 5xx, %d closed without answer, "
            "%d held to our half-close, %d desync; normal request after each: %d failed; process alive: %s (%.0f s; "
            "each case's answer in malformed.txt)"
            % (name, r["cases"], r["4xx"], r["2xx"] + r["3xx"] + r["1xx"], r["5xx"], r["closed"], r["held"],
               r["desync"], r["followup_failed"], serve.alive(), time.monotonic() - t))
    memline("malformed")

    # 2 ---------------------------------------------------------------
    n = 64
    closes, lat, errs = slowloris({"edge": (eport, "127.0.0.2"), "control": (cport, "127.0.0.3")}, n,
                                  [edge_check, ctl_check], HEADER_TIMEOUT * 2 + 5)
    parts = []
    for name in ("edge", "control"):
        ts = sorted(x for x in closes[name] if x is not None)
        still = sum(1 for x in closes[name] if x is None)
        parts.append("%s cut %d/%d after %.1f-%.1f s (median %.1f)" % (
            name, len(ts), n, ts[0] if ts else -1, ts[-1] if ts else -1, ts[len(ts) // 2] if ts else -1))
        if still:
            finding("slowloris", "%s: %d of %d slowloris connections still open after %d s"
                    % (name, still, n, HEADER_TIMEOUT * 2 + 5))
    lat.sort()
    log("2. slowloris (%d conns per listener, 1 header byte/s, header timeout %d s): %s; normal requests "
        "meanwhile: %d, %d failed, latency p50 %.1f ms max %.1f ms"
        % (n, HEADER_TIMEOUT, "; ".join(parts), len(lat), len(errs), lat[len(lat) // 2] * 1000, lat[-1] * 1000))
    if errs:
        finding("slowloris", "normal requests failed during slowloris: %s" % errs[:5])
    memline("slowloris")

    # 3 ---------------------------------------------------------------
    flood = 3000
    over0 = metric(admin, "tollgate_connections_over_address_cap_total") or 0
    rows = []
    for name, port, check in (("edge", eport, edge_check), ("control", cport, ctl_check)):
        socks = open_many(port, ["127.0.0.4"], flood)
        time.sleep(1.0)
        held = count_held(socks)
        same_ip = check("127.0.0.4")[0]
        st, _, _, dt = check()
        fds = rss(serve.pid)[1]
        for s in socks:
            s.close()
        rows.append("%s: %d/%d connected from one address, %d held (cap %d), a new one from it: %s, "
                    "from 127.0.0.1: %s in %.1f ms (fds %d)"
                    % (name, len(socks), flood, held, PER_IP, same_ip or "closed", st, dt * 1000, fds))
        if held > PER_IP:
            finding("flood", "%s held %d connections from one address, over the cap of %d" % (name, held, PER_IP))
        if st != 200:
            finding("flood", "%s: normal request during a one-address flood got %s" % (name, st))
    time.sleep(0.5)
    srcs = ["127.0.1.%d" % i for i in range(1, 13)]     # 12 addresses x 250, under the cap
    socks = open_many(eport, srcs, flood)
    time.sleep(1.0)
    held = count_held(socks)
    st, _, _, dt = edge_check()
    fds = rss(serve.pid)[1]
    for s in socks:
        s.close()
    over = (metric(admin, "tollgate_connections_over_address_cap_total") or 0) - over0
    rows.append("edge, %d addresses: %d/%d connected, %d held, normal request %s in %.1f ms (fds %d); "
                "over-cap closes counted by the edge: %d" % (len(srcs), len(socks), flood, held, st, dt * 1000, fds, over))
    if st != 200:
        finding("flood", "edge: normal request during a many-address flood got %s" % st)
    log("3. connection flood: " + "; ".join(rows))
    time.sleep(1.0)
    memline("flood")

    # 4 ---------------------------------------------------------------
    def flight(host, paths, label):
        res = [None] * len(paths)
        barrier = threading.Barrier(len(paths))

        def viewer(i):
            c = http.client.HTTPConnection("127.0.0.1", eport, timeout=30,
                                           source_address=("127.0.2.%d" % (1 + i % 4), 0))
            try:
                c.connect()
                barrier.wait(10)
                t = time.monotonic()
                c.request("GET", paths[i], headers={"Host": host})
                r = c.getresponse()
                b = r.read()
                res[i] = (r.status, len(b), r.getheader("Cache"), time.monotonic() - t)
            except Exception as e:  # noqa: BLE001
                res[i] = (None, repr(e), None, 0)
            finally:
                c.close()
        ths = [threading.Thread(target=viewer, args=(i,)) for i in range(len(paths))]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        base = paths[0].split("?")[0]
        hits = HITS.get(base, 0)
        ok = sum(1 for r in res if r[0] == 200 and r[1] == 65536)
        cache = collections.Counter(r[2] for r in res)
        worst = max(r[3] for r in res)
        if hits != 1:
            finding("single-flight", "%s: %d origin fetches for one cold object (want 1)" % (label, hits))
        if ok != len(paths):
            finding("single-flight", "%s: %d of %d viewers got the full object: %s"
                    % (label, ok, len(paths), [r for r in res if r[0] != 200][:3]))
        return "%s: %d viewers, %d got 200 + 64 KiB, origin fetches %d, Cache %s, slowest %.2f s" % (
            label, len(paths), ok, hits, dict(cache), worst)
    p = "/slow-%s" % os.urandom(4).hex()
    a = flight(CNAME, [p] * 200, "plain")
    p = "/slow-%s.bin" % os.urandom(4).hex()
    links = []
    for i in range(200):
        e = int(time.time()) + 600 + i
        links.append("%s?md5=%s&expires=%d" % (p, sign(KEY, p, e), e))
    b = flight(SECURE_CNAME, links, "signed, 200 distinct links")
    log("4. single flight (origin takes %.1f s): %s; %s" % (SLOW_DELAY, a, b))
    memline("single flight")

    # 5 ---------------------------------------------------------------
    faults = [("reset", "RST after 1000 of 100000 bytes"), ("short", "CL 1000, 10 bytes, close"),
              ("long", "CL 10, 1000 bytes"), ("hang", "never answers"), ("hanghead", "half a status line"),
              ("drip", "body 1 byte/s"), ("driphead", "head 1 byte/s"), ("bighdr", "1 MiB header"),
              ("manyhdr", "10k headers"), ("badchunk", "chunk size zz"), ("hugechunk", "chunk size overflows"),
              ("cutchunk", "chunked, closed early"), ("badcl", "CL abc"), ("twocl", "two CLs"),
              ("clte", "CL and chunked"), ("garbage", "not HTTP"), ("empty", "closes at once"),
              ("status", "status 2x0"), ("nul", "NUL in a header")]
    fres = {}

    def fault(kind):
        path = "/%s-%s" % (kind, os.urandom(3).hex())
        st, body, hdrs, dt = http_get(eport, path, CNAME, timeout=ORIGIN_TOTAL_TIMEOUT + 20)
        fres[kind] = (path, st, body, hdrs, dt)
    t = time.monotonic()
    ths = [threading.Thread(target=fault, args=(k,)) for k, _ in faults]
    for th in ths:
        th.start()
    for th in ths:
        th.join()
    parts = []
    for kind, desc in faults:
        path, st, body, hdrs, dt = fres[kind]
        what = ("%s %dB" % (st, len(body))) if st else ("error %s" % body.split("(")[0])
        cached_bad = False
        if kind in ("reset", "short", "long", "cutchunk", "badchunk", "hugechunk", "clte", "twocl"):
            again = http_get(eport, path, CNAME, timeout=ORIGIN_TOTAL_TIMEOUT + 10)
            want = {"long": 10, "clte": 5}.get(kind)
            cached_bad = (again[0] == 200 and again[2].get("Cache") == "HIT"
                          and (want is None or len(again[1]) != want))
        parts.append("%s(%s): %s %.1fs" % (kind, desc, what, dt))
        if dt > ORIGIN_TOTAL_TIMEOUT + 5:
            finding("faulty-origin", "%s: viewer waited %.1f s (total timeout %d s)" % (kind, dt, ORIGIN_TOTAL_TIMEOUT))
        if cached_bad:
            finding("faulty-origin", "%s: a broken body was cached and served as HIT (%d bytes)"
                    % (kind, len(again[1])), "curl -H 'Host: %s' http://127.0.0.1:EDGE%s twice" % (CNAME, path))
    alive = edge_check()[0]
    if alive != 200 or not serve.alive():
        finding("faulty-origin", "edge not answering after the faulty origins: %s" % alive)
    log("5. faulty origins (%d kinds, in parallel, %.1f s): %s; edge afterwards: %s"
        % (len(faults), time.monotonic() - t, "; ".join(parts), alive))
    memline("faulty origins")

    # 6 ---------------------------------------------------------------
    kdata = os.path.join(work, "control-data")
    kout = os.path.join(work, "control.out")
    outputs.append(kout)
    rid = None
    tot_acked = tot_lost = 0
    rows = []
    for rnd in (1, 2):
        rid, ack, lost, lastp, plost, errors, at_kill, packs = kill9_round(kdata, rnd, kout, rid)
        tot_acked += ack + packs
        tot_lost += lost + plost
        rows.append("round %d: %d creates acknowledged (%d when the kill was sent), %d missing after restart; "
                    "%d PATCHes acknowledged, the last (v%d) %s; refused/failed: %s"
                    % (rnd, ack, at_kill, lost, packs, lastp, "LOST" if plost else "kept", dict(errors) or "none"))
    log("6. kill -9 of tollgate control mid-write (4 creators + 1 patcher, keep-alive, 2 rounds, SQLite): "
        "%d acknowledged writes, %d lost; %s" % (tot_acked, tot_lost, "; ".join(rows)))

    # 7 ---------------------------------------------------------------
    st, audit = api(cport, "GET", "/tollgate/audit")
    audit_path = os.path.join(work, "audit.json")
    with open(audit_path, "w") as f:
        json.dump(audit, f)
    serve_alive = serve.alive()
    mem_end = rss(serve.pid)
    serve.stop()
    files = outputs + [access_log, audit_path]
    for d, _, names in os.walk(work):
        for nm in names:
            fp = os.path.join(d, nm)
            if (nm.endswith(".log") or ".log." in nm) and fp not in files:
                files.append(fp)
    secrets = {"secure key": KEY, "rotated key": ROTATED_KEY, "refused key": BAD_KEY, "API token": TOKEN,
               "wrong token": WRONG_TOKEN, "link token (md5=)": link.split("md5=")[1].split("&")[0]}
    found = []
    nbytes = 0
    for fp in files:
        try:
            with open(fp, "rb") as f:
                text = f.read()
        except OSError:
            continue
        nbytes += len(text)
        for what, sec in secrets.items():
            if sec.encode() in text:
                found.append((what, os.path.basename(fp)))
    for what, fn in found:
        finding("logs", "%s found in %s" % (what, fn), "grep -F -- '%s' %s" % (secrets[what], fn))
    lines = sum(open(fp, "rb").read().count(b"\n") for fp in files if os.path.exists(fp))
    log("7. secrets in logs: %d secrets (%s) searched in %d files (%d lines, %d bytes: serve and control "
        "output, access log, audit log with %s entries): %d found"
        % (len(secrets), ", ".join(secrets), len(files), lines, nbytes,
           len(audit) if isinstance(audit, list) else "?", len(found)))

    # 8 ---------------------------------------------------------------
    if not serve_alive:
        finding("crash", "tollgate serve exited with %s" % serve.p.returncode)
    log("8. RSS / fds of tollgate serve (edge + control, one process): " + ", ".join(
        "%s %.1f MiB / %d" % m for m in mem) + ", end %.1f MiB / %d" % mem_end)

    STOP.set()
    origin.shutdown()
    log("attack: %d findings in %.0f s%s" % (len(FINDINGS), time.monotonic() - T0,
                                              "" if FINDINGS else " (work dir %s)" % work))
    for sec, what, repro in FINDINGS:
        log("  [%s] %s" % (sec, what))
    sys.exit(1 if FINDINGS else 0)


if __name__ == "__main__":
    main()
