#!/usr/bin/env bash
# Large files: nginx (slice 4m, proxy_cache on disk) and `tollgate edge` (memory tier and disk
# tier, Gcore's slice option on) in front of the same origin, side by side in one run, both
# caching on the same real filesystem (a directory under /var/tmp, not tmpfs). The origin is
# nginx serving files from that directory (it answers Range). Files: one BIG_MB (1 GiB) object,
# a catalogue of FILES (16) files making CATALOGUE_MB (4 GiB), and PROBES (500) 512 KiB files
# for the restart probe; each edge's disk cache is as large as all of them (plus 1 GiB), and
# tollgate's memory tier is MEM_MB (256 MiB), so most of its catalogue hits come from disk.
#   (a) cold miss of the big object through each edge: time to first byte and throughput, and
#       the origin's own for the same file (median of 3, asked directly); the bytes are checked
#       (sha256) on a second download through each edge. The catalogue's first download
#       through each edge (the warm-up of (b)) is a cold miss too: its median TTFB is reported
#       against the origin's for the same files, and every file's sha256 is checked.
#   (b) warm hits over the catalogue, with wrk: whole objects (a random file per request,
#       WHOLE_CONNS connections; MiB/s and p99) and random 1 MiB ranges at any offset (CONNS
#       connections; req/s and p99). ROUNDS rounds, nginx and tollgate alternating; medians.
#       The origin's access log counts the requests that reached it meanwhile (expected 0).
#       Then random unaligned ranges (some across slice boundaries) are checked byte for byte.
#       Each edge's CPU time over its wrk runs per GiB they received is shown too: with the
#       load generator's one core the ceiling, it tells what the rates cannot.
#   (c) restart: each edge is stopped (SIGTERM, wait) and started again; a poller asks for a
#       different known-cached probe file each time (5 ms apart, then 25 ms, then 100 ms) until
#       an answer is a hit (tollgate's `Cache: HIT`, nginx's `X-Cache: HIT`) that cost the
#       origin nothing (its access log did not grow): the time from the start to that answer.
#       A different file each time, because a miss during the disk scan makes a new object of
#       the probed one. Then one 1 MiB range in every 4 MiB slice of the big object and of
#       every catalogue file (or SAMPLE of them) is asked for and checked byte for byte, and
#       what each edge held on disk after the warm-up is shown: hits are the requests that did
#       not reach the origin (tollgate says HIT for a sparse object that fetches a missing
#       slice, so its header alone would overcount; both header counts are shown too).
#   (d) resident memory (VmRSS; nginx: master + workers + cache manager/loader) at its peak
#       during (b) (sampled every 0.2 s) and at the end.
# Prints a table with both figures, the ratio tollgate/nginx and the targets: warm hits at least
# 1.2x nginx's rate with p99 no worse; cold TTFB within 5 ms of the origin's own; after a
# restart at least 99% of the working set hits; tollgate's RSS at most MEM_MB + 64 MiB.
#
# The files are written once per run from /dev/urandom (about 3 s per GiB here), and the free
# space of LARGE_DIR (default /var/tmp) is checked first: origin files + two caches, so 3x the
# files plus 1 GiB; the catalogue is scaled down, with a message, when that does not fit. With
# more RAM than the files (as on the 24 GiB CI machine) the "disk" reads of both edges come from
# the kernel's page cache: DROP_CACHES=1 (root) drops it before every wrk run to read the disk
# itself (this slows everything else on the machine too).
#
# PIN=1 (the default on two or more cores): wrk, curl, the checks and the origin run on CPU 0,
# each edge alone on CPU 1 with one worker (tollgate's disk threads included). PIN=0: all share
# every core, wrk -t2, one edge worker per core.
# TG_SLICE=0 runs tollgate without the slice option (a miss fills the whole object from one
# origin request; nginx keeps slice 4m); the restart probe then still works (one file each).
# Knobs: SECS (10, per wrk run), ROUNDS (3), CONNS (16), WHOLE_CONNS (4), BIG_MB (1024),
# CATALOGUE_MB (4096), FILES (16), PROBES (500), SAMPLE (0: every slice), MEM_MB (256),
# DISK_MB (all files + 1 GiB), LARGE_DIR (/var/tmp), TG_BIN, KEEP=1 (keep the files and
# processes), VERBOSE=1 (every round on stderr).
# Takes about 4 minutes at the defaults on 2 cores (3m39s measured; half a minute of it writing
# and hashing the files, 2 of wrk), and needs 17 GiB free. Pinned, wrk's one core caps what it
# can receive at about 1.8 GB/s: an edge that leaves CPU 1 idle at that rate (nginx on whole
# objects does) is measured below its capacity; compare the CPU left idle.
# Usage: [SECS=10] [ROUNDS=3] [CATALOGUE_MB=4096 FILES=16] [BIG_MB=1024] bench/large-files.sh
# Smoke run: BIG_MB=64 CATALOGUE_MB=256 FILES=4 PROBES=50 SECS=3 ROUNDS=1 bench/large-files.sh
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${SECS:-10}"; rounds="${ROUNDS:-3}"; conns="${CONNS:-16}"; whole_conns="${WHOLE_CONNS:-4}"
big_mb="${BIG_MB:-1024}"; cat_mb="${CATALOGUE_MB:-4096}"; files="${FILES:-16}"
probes="${PROBES:-500}"; sample="${SAMPLE:-0}"; mem_mb="${MEM_MB:-256}"
[ "$probes" -le 1000 ] || { echo "PROBES: at most 1000" >&2; exit 1; }
. bench/lib.sh
started=$(date +%s)
PY=$(python3 -c 'import sys; print(sys.executable)')   # not through a pyenv shim: it starts in 20 ms
O=$(free_port); N=$(free_port); T=$(free_port); A=$(free_port)
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  LOAD="taskset -c 0"; EDGE="taskset -c 1"; wrk_threads=1; edge_workers=1
  mode="pinned: wrk -t1, curl, the checks and the origin on CPU 0, each edge alone on CPU 1 with one worker"
else
  LOAD=""; EDGE=""; wrk_threads=2; edge_workers=$(nproc)
  mode="shared: wrk -t2, origin and edges on all $(nproc) cores, one edge worker per core"
fi

# The files and both caches on one real filesystem.
big=$(mktemp -d "${LARGE_DIR:-/var/tmp}/tollgate-large.XXXXXX"); scratch+=("$big")
fstype=$(df --output=fstype "$big" | tail -1 | tr -d ' ')
[ "$fstype" != tmpfs ] || echo "warning: $big is on tmpfs, not a disk; set LARGE_DIR" >&2
probe_mb=$(( (probes + 1) / 2 ))
avail=$(df --output=avail -m "$big" | tail -1 | tr -d ' ')
need=$(( 3 * (big_mb + cat_mb + probe_mb) + 1024 ))
if [ "$avail" -lt "$need" ]; then
  fit=$(( (avail - 1024) / 3 - big_mb - probe_mb ))
  fit=$(( fit / (4 * files) * 4 * files ))
  [ "$fit" -ge $(( 4 * files )) ] || { echo "only $avail MiB free in $big: not room for a ${big_mb} MiB file, $files catalogue files and two caches of them" >&2; exit 1; }
  echo "only $avail MiB free in $big ($need needed for origin files + two caches): catalogue scaled down from $cat_mb to $fit MiB" >&2
  cat_mb=$fit
fi
file_mb=$(( cat_mb / files / 4 * 4 ))   # whole 4 MiB slices
[ "$file_mb" -ge 4 ] || { echo "CATALOGUE_MB / FILES must be at least 4 MiB" >&2; exit 1; }
cat_mb=$(( file_mb * files ))
disk_mb="${DISK_MB:-$(( big_mb + cat_mb + probe_mb + 1024 ))}"
file_bytes=$(( file_mb << 20 )); big_bytes=$(( big_mb << 20 ))

echo "writing ${big_mb} MiB + $files x ${file_mb} MiB + $probes x 512 KiB in $big ($fstype, $avail MiB free)" >&2
mkdir -p "$big/www/c" "$big/www/p" "$big/nginx-cache" "$big/tollgate-cache" "$dir/origin" "$dir/edge"
head -c "${big_mb}M" /dev/urandom > "$big/www/big.bin"
for i in $(seq 0 $((files - 1))); do head -c "${file_mb}M" /dev/urandom > "$big/www/c/$(printf %02d "$i").bin"; done
"$PY" - "$big/www/p" "$probes" <<'PY'
import os, sys
for i in range(int(sys.argv[2])):
    with open(os.path.join(sys.argv[1], "%03d.bin" % i), "wb") as f: f.write(os.urandom(512 << 10))
PY
sha() { openssl dgst -sha256 -r | cut -c1-64; }
big_sha=$(sha < "$big/www/big.bin")
declare -a cat_sha
for i in $(seq 0 $((files - 1))); do cat_sha[$i]=$(sha < "$big/www/c/$(printf %02d "$i").bin"); done
sync
echo "files written and hashed in $(( $(date +%s) - started )) s" >&2

common=$(nginx_common 4096)
# The origin: nginx serving the files, logging every request (the edges' origin fetches).
cat > "$dir/origin/nginx.conf" <<CONF
worker_processes 1; pid $dir/origin/nginx.pid; error_log $dir/origin/error.log warn; $common
http { sendfile on; tcp_nopush off; server_tokens off; $(temps "$dir/origin")
  log_format o '\$msec \$request_uri "\$http_range" \$status \$body_bytes_sent';
  access_log $dir/origin/access.log o;
  server { listen 127.0.0.1:$O; root $big/www; } }
CONF
# The nginx edge: slice 4m (tollgate's slices are 4 MiB), each slice cached in its own file.
cat > "$dir/edge/nginx.conf" <<CONF
worker_processes $edge_workers; pid $dir/edge/nginx.pid; error_log $dir/edge/error.log warn; $common
http { access_log off; sendfile on; tcp_nopush off; server_tokens off; $(temps "$dir/edge")
  proxy_cache_path $big/nginx-cache levels=1:2 keys_zone=z:64m max_size=${disk_mb}m inactive=1d use_temp_path=off;
  upstream origin { server 127.0.0.1:$O; keepalive 32; }
  server { listen 127.0.0.1:$N reuseport;
    location / {
      slice 4m;
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache z; proxy_cache_key \$uri\$slice_range; proxy_set_header Range \$slice_range;
      proxy_cache_valid 200 206 1h; add_header X-Cache \$upstream_cache_status; } } }
CONF
if [ "${TG_SLICE:-1}" = 1 ]; then tg_options='{"slice": {"enabled": true, "value": true}}'; else tg_options='{}'; fi
cat > "$dir/resources.json" <<JSON
[{"id": 1, "cname": "cdn.example.com", "origin": "127.0.0.1:$O", "options": $tg_options}]
JSON
$LOAD "$NGINX" -p "$dir/origin" -c "$dir/origin/nginx.conf" -e "$dir/origin/error.log" -g 'daemon off;' & pids+=($!)
start_nginx() {
  $EDGE "$NGINX" -p "$dir/edge" -c "$dir/edge/nginx.conf" -e "$dir/edge/error.log" -g 'daemon off;' &
  nginx_master=$!; pids+=($!)
}
start_tollgate() {
  $EDGE "$TG" edge --resources "$dir/resources.json" --listen "127.0.0.1:$T" --admin "127.0.0.1:$A" \
    --cache-size "${mem_mb}M" --cache-dir "$big/tollgate-cache" --disk-cache-size "${disk_mb}M" \
    --workers "$edge_workers" 2>>"$dir/tollgate.log" &
  tollgate_pid=$!; pids+=($!)
}
start_nginx; start_tollgate
up() { for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$1/" && return 0; sleep 0.05; done; echo "nothing listens on $1" >&2; exit 1; }
up $O; up $N; up $T

H='Host: cdn.example.com'
port_of() { if [ "$1" = nginx ]; then echo $N; else echo $T; fi; }
hdr_of() { if [ "$1" = nginx ]; then echo x-cache; else echo cache; fi; }
origin_reqs() { wc -l < "$dir/origin/access.log"; }
metric() { curl -s "http://127.0.0.1:$A/metrics" | awk -v m="$1" '$1 == m {print $2; exit}'; }
# Waits until tollgate has written what it queued for its disk (its write counter stands
# still for a second), then flushes the filesystem, so write-back lands in neither edge's runs.
settle() {
  local a b; a=$(metric 'tollgate_disk_bytes_total{op="write"}')
  while sleep 1; b=$(metric 'tollgate_disk_bytes_total{op="write"}'); [ "$a" != "$b" ]; do a=$b; done
  sync
}
rss_kb() { local total=0; for p in "$@"; do total=$(( total + $(awk '/VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0) )); done; echo $total; }
edge_pids() { if [ "$1" = nginx ]; then echo "$nginx_master $(pgrep -P "$nginx_master" | tr '\n' ' ')"; else echo "$tollgate_pid"; fi; }
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.2f", s * 1000 }'; }
# curl -w fields of a GET: TTFB (s), speed (bytes/s), status, size; to /dev/null, or hashed.
get_null() { $LOAD curl -s -o /dev/null -H "$H" -w '%{time_starttransfer} %{speed_download} %{http_code} %{size_download}\n' "http://127.0.0.1:$1$2"; }
get_sha() {
  local h; h=$( { $LOAD curl -s -H "$H" -w '%{stderr}%{time_starttransfer} %{speed_download} %{http_code} %{size_download}' \
    "http://127.0.0.1:$1$2" | $LOAD openssl dgst -sha256 -r; } 2>"$dir/curl-w" | cut -c1-64)
  echo "$(cat "$dir/curl-w") $h"
}

cat > "$dir/probe.py" <<'PY'
# firsthit PORT HEADER PROBES T0FILE ORIGINLOG | sample PORT HEADER WWW N PATH:SIZE... |
# check PORT WWW FILES SIZE N | warm PORT PROBES
import http.client, os, random, sys, time
S, M = 4 << 20, 1 << 20
def conn(port): return http.client.HTTPConnection("127.0.0.1", int(port), timeout=60)
def get(c, path, lo=None, hi=None):
    h = {"Host": "cdn.example.com"}
    if lo is not None: h["Range"] = "bytes=%d-%d" % (lo, hi)
    c.request("GET", path, headers=h)
    r = c.getresponse()
    return r, r.read()
def want(www, path, lo, n):
    with open(www + path, "rb") as f:
        f.seek(lo); return f.read(n)
mode, port = sys.argv[1], sys.argv[2]
if mode == "firsthit":
    hdr, n, t0file, log = sys.argv[3], int(sys.argv[4]), sys.argv[5], sys.argv[6]
    answered = hit = None; i = 0; c = None
    while i < n:
        try:
            if c is None: c = conn(port)
            before = os.stat(log).st_size
            r, body = get(c, "/p/%03d.bin" % i, 0, 1023)
        except (OSError, http.client.HTTPException):
            if c is not None: c.close()
            c = None; time.sleep(0.002); continue
        now = time.time()
        answered = answered or now
        i += 1
        if r.status == 206 and (r.getheader(hdr) or "").upper() == "HIT":
            time.sleep(0.03)
            if os.stat(log).st_size == before:
                hit = now; break
        time.sleep(0.005 if i < 100 else 0.025 if i < 300 else 0.1)
    t0 = float(open(t0file).read())
    f = lambda t: "%.0f" % ((t - t0) * 1000) if t else "none"
    print(f(answered), f(hit), i)
elif mode == "sample":
    hdr, www, n = sys.argv[3], sys.argv[4], int(sys.argv[5])
    rnd = random.Random(7)
    todo = []
    for a in sys.argv[6:]:
        path, size = a.split(":"); size = int(size)
        todo += [(path, size, k) for k in range((size + S - 1) // S)]
    if 0 < n < len(todo): todo = rnd.sample(todo, n)
    c = conn(port); hits = bad = 0
    for path, size, k in todo:
        lo = k * S; slen = min(S, size - lo); ln = min(M, slen); lo += rnd.randint(0, slen - ln)
        r, body = get(c, path, lo, lo + ln - 1)
        if r.status != 206 or body != want(www, path, lo, ln):
            bad += 1
            if bad <= 3: print("bad answer: %s bytes=%d-%d: %d, %d bytes" % (path, lo, lo + ln - 1, r.status, len(body)), file=sys.stderr)
        hits += (r.getheader(hdr) or "").upper() == "HIT"
    print(len(todo), hits, bad)
elif mode == "check":
    www, files, size, n = sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
    rnd = random.Random(11); c = conn(port); bad = 0
    for i in range(n):
        path = "/c/%02d.bin" % rnd.randrange(files)
        if i % 2: lo = rnd.randrange(size - M)                                   # anywhere
        else: lo = max(0, min(size - M, rnd.randrange(size // S + 1) * S - rnd.randrange(M)))  # across a boundary
        ln = rnd.randint(1, M)
        r, body = get(c, path, lo, lo + ln - 1)
        if r.status != 206 or body != want(www, path, lo, ln):
            bad += 1
            if bad <= 3: print("bad answer: %s bytes=%d-%d: %d, %d bytes" % (path, lo, lo + ln - 1, r.status, len(body)), file=sys.stderr)
    print(n, bad)
elif mode == "warm":
    c = conn(port); bad = 0
    for i in range(int(sys.argv[3])):
        r, body = get(c, "/p/%03d.bin" % i)
        bad += r.status != 200 or len(body) != 512 << 10
    print(bad)
PY
cat > "$dir/whole.lua" <<'LUA'
local files
function init(args) files = tonumber(args[1]); math.randomseed(os.time() + os.clock() * 1e6) end
function request()
  return wrk.format("GET", string.format("/c/%02d.bin", math.random(0, files - 1)), {["Host"] = "cdn.example.com"})
end
LUA
cat > "$dir/range.lua" <<'LUA'
local files, size, len
function init(args)
  files = tonumber(args[1]); size = tonumber(args[2]); len = tonumber(args[3])
  math.randomseed(os.time() + os.clock() * 1e6)
end
function request()
  local off = math.floor(math.random() * (size - len + 1))
  return wrk.format("GET", string.format("/c/%02d.bin", math.random(0, files - 1)),
    {["Host"] = "cdn.example.com", ["Range"] = string.format("bytes=%d-%d", off, off + len - 1)})
end
LUA

# (a) The cold miss of the big object; the origin's own figures first.
ot=(); os_=()
for _ in 1 2 3; do
  read -r t s c z < <(get_null $O /big.bin)
  [ "$c" = 200 ] && [ "$z" = "$big_bytes" ] || { echo "origin: $c, $z bytes for /big.bin" >&2; exit 1; }
  ot+=("$t"); os_+=("$s")
done
origin_ttfb=$(ms "$(median "${ot[@]}")"); origin_speed=$(mib "$(median "${os_[@]}")")
declare -A ttfb speed cat_ttfb warm_reqs
for who in nginx tollgate; do
  p=$(port_of $who); r0=$(origin_reqs)
  read -r t s c z < <(get_null "$p" /big.bin)
  [ "$c" = 200 ] && [ "$z" = "$big_bytes" ] || { echo "$who: $c, $z bytes for the cold /big.bin" >&2; exit 1; }
  ttfb[$who]=$(ms "$t"); speed[$who]=$(mib "$s")
  read -r t s c z h < <(get_sha "$p" /big.bin)
  [ "$h" = "$big_sha" ] || { echo "$who: /big.bin's second download has sha256 $h ($c, $z bytes), the file's is $big_sha" >&2; exit 1; }
  echo "cold $big_mb MiB through $who: TTFB ${ttfb[$who]} ms, ${speed[$who]} MiB/s, $(( $(origin_reqs) - r0 )) origin requests; bytes checked (second download $(mib "$s") MiB/s)" >&2
done

# (b) warm-up: every catalogue file once through each edge (a cold miss each, its bytes
# checked), taking turns per file; the origin's own TTFB for each file in between.
ots=(); nts=(); tts=()
for i in $(seq 0 $((files - 1))); do
  f=/c/$(printf %02d "$i").bin
  read -r t _ c _ < <(get_null $O "$f"); ots+=("$t")
  for who in nginx tollgate; do
    r0=$(origin_reqs)
    read -r t s c z h < <(get_sha "$(port_of $who)" "$f")
    [ "$c" = 200 ] && [ "$h" = "${cat_sha[$i]}" ] || { echo "$who: $f answered $c, $z bytes, sha256 $h; the file's is ${cat_sha[$i]}" >&2; exit 1; }
    warm_reqs[$who]=$(( ${warm_reqs[$who]:-0} + $(origin_reqs) - r0 ))
    if [ $who = nginx ]; then nts+=("$t"); else tts+=("$t"); fi
  done
done
cat_origin_ttfb=$(ms "$(median "${ots[@]}")"); cat_ttfb[nginx]=$(ms "$(median "${nts[@]}")"); cat_ttfb[tollgate]=$(ms "$(median "${tts[@]}")")
settle
# What each edge holds on disk now: all of the big object and the catalogue, if every slice
# fetched was written (nginx: its cache directory; tollgate: its own count, headers included).
disk_n=$(du -sm "$big/nginx-cache" | cut -f1); disk_t=$(mib "$(metric tollgate_disk_used_bytes)")
echo "on disk after the warm-up: nginx $disk_n MiB, tollgate $disk_t MiB, of $(( big_mb + cat_mb )) MiB fetched" >&2
echo "warm-up: $files files through each edge, bytes checked; origin requests: nginx ${warm_reqs[nginx]}, tollgate ${warm_reqs[tollgate]} ($(( file_mb / 4 )) slices a file); $(( $(date +%s) - started )) s so far" >&2

# Transfer/sec of wrk (binary units) in MiB/s.
transfer() { awk '/Transfer\/sec/ { v = $2; u = 1
  if (v ~ /GB$/) u = 1024; else if (v ~ /MB$/) u = 1; else if (v ~ /KB$/) u = 1 / 1024; else u = 1 / 1048576
  sub(/[KMG]?B$/, "", v); printf "%.0f", v * u }'; }
faults() { awk '/Non-2xx/ {print "non-2xx " $NF} /Socket errors/ {print}'; }
run() { # who scenario
  local p; p=$(port_of "$1")
  [ "${DROP_CACHES:-0}" != 1 ] || { sync; echo 3 > /proc/sys/vm/drop_caches; }
  if [ "$2" = whole ]; then
    $LOAD wrk -t"$wrk_threads" -c"$whole_conns" -d"${secs}s" --timeout 60s --latency -s "$dir/whole.lua" "http://127.0.0.1:$p" -- "$files"
  else
    $LOAD wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" --timeout 30s --latency -s "$dir/range.lua" "http://127.0.0.1:$p" -- "$files" "$file_bytes" 1048576
  fi
}
rss_watch() { # file pids...: the peak of their summed VmRSS (kB), every 0.2 s
  local out=$1 peak=0 v; shift
  while :; do v=$(rss_kb "$@"); [ "$v" -le "$peak" ] || { peak=$v; echo "$peak" > "$out"; }; sleep 0.2; done
}
declare -A wm wp rr rp hit_reqs peak
declare -A wms wps rrs rps_ cpu_ticks gib_read
# CPU time (utime + stime, clock ticks) of processes; wrk's "N GB read" in GiB.
ticks() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0) )); done; echo $t; }
read_gib() { awk '/ read$/ { v = $(NF - 1); u = 1 / 1048576
  if (v ~ /GB$/) u = 1; else if (v ~ /MB$/) u = 1 / 1024; else if (v ~ /KB$/) u = 1 / 1048576
  sub(/[KMG]?B$/, "", v); printf "%.3f", v * u }'; }
for round in $(seq 1 "$rounds"); do
  for scenario in whole range; do
    for who in nginx tollgate; do
      r0=$(origin_reqs)
      # shellcheck disable=SC2046
      rss_watch "$dir/rss-$who" $(edge_pids $who) & watcher=$!
      # shellcheck disable=SC2046
      t0=$(ticks $(edge_pids $who))
      out=$(run $who $scenario)
      # shellcheck disable=SC2046
      t1=$(ticks $(edge_pids $who))
      cpu_ticks[$who$scenario]=$(( ${cpu_ticks[$who$scenario]:-0} + t1 - t0 ))
      gib_read[$who$scenario]=$(awk -v a="${gib_read[$who$scenario]:-0}" -v b="$(echo "$out" | read_gib)" 'BEGIN { print a + b }')
      kill "$watcher"; wait "$watcher" 2>/dev/null || true
      v=$(cat "$dir/rss-$who"); [ "$v" -le "${peak[$who]:-0}" ] || peak[$who]=$v
      hit_reqs[$who]=$(( ${hit_reqs[$who]:-0} + $(origin_reqs) - r0 ))
      bad=$(echo "$out" | faults)
      [ -z "$bad" ] || { echo "$scenario through $who: $bad; the figures would be wrong" >&2; echo "$out" >&2; exit 1; }
      if [ $scenario = whole ]; then
        wms[$who]+=" $(echo "$out" | transfer)"; wps[$who]+=" $(echo "$out" | p99)"
        [ -z "${VERBOSE:-}" ] || echo "  whole round $round $who: ${wms[$who]##* } MiB/s, p99 ${wps[$who]##* } ms" >&2
      else
        rrs[$who]+=" $(echo "$out" | rps)"; rps_[$who]+=" $(echo "$out" | p99)"
        [ -z "${VERBOSE:-}" ] || echo "  range round $round $who: ${rrs[$who]##* } req/s, p99 ${rps_[$who]##* } ms" >&2
      fi
    done
  done
done
for who in nginx tollgate; do
  # shellcheck disable=SC2086
  { wm[$who]=$(median ${wms[$who]}); wp[$who]=$(median ${wps[$who]}); rr[$who]=$(median ${rrs[$who]}); rp[$who]=$(median ${rps_[$who]}); }
done
declare -A checked
for who in nginx tollgate; do
  read -r n b < <($LOAD "$PY" "$dir/probe.py" check "$(port_of $who)" "$big/www" "$files" "$file_bytes" 200)
  [ "$b" = 0 ] || { echo "$who: $b of $n random ranges had wrong bytes" >&2; exit 1; }
  checked[$who]=$n
done
disk_hits=$(metric 'tollgate_cache_tier_lookups_total{tier="disk",result="hit"}')
disk_read=$(metric 'tollgate_disk_bytes_total{op="read"}')
echo "warm hits: origin requests meanwhile nginx ${hit_reqs[nginx]}, tollgate ${hit_reqs[tollgate]}; tollgate disk hits $disk_hits, $(mib "${disk_read:-0}") MiB read from its disk tier; ${checked[nginx]} random ranges checked on each; $(( $(date +%s) - started )) s so far" >&2

# (c) The restart: the probe files cached in both, written out, then each edge stopped and started.
for who in nginx tollgate; do
  b=$($LOAD "$PY" "$dir/probe.py" warm "$(port_of $who)" "$probes")
  [ "$b" = 0 ] || { echo "$who: $b probe files not answered whole" >&2; exit 1; }
done
settle
tg_skipped=$(metric 'tollgate_disk_errors_total{kind="skipped"}')
# The working set: the big object and the catalogue, one range in every slice of each.
working_set=("/big.bin:$big_bytes")
for i in $(seq 0 $((files - 1))); do working_set+=("/c/$(printf %02d "$i").bin:$file_bytes"); done
declare -A answered first probed hdr_hits fetched sampled
for who in nginx tollgate; do
  if [ $who = nginx ]; then kill -TERM "$nginx_master"; wait "$nginx_master" || true
  else kill -TERM "$tollgate_pid"; wait "$tollgate_pid" || true; fi
  rm -f "$dir/t0"
  $LOAD "$PY" "$dir/probe.py" firsthit "$(port_of $who)" "$(hdr_of $who)" "$probes" "$dir/t0" "$dir/origin/access.log" > "$dir/first-$who" &
  poller=$!
  sleep 0.3
  date +%s.%N > "$dir/t0"
  if [ $who = nginx ]; then start_nginx; else start_tollgate; fi
  wait "$poller"
  read -r answered[$who] first[$who] probed[$who] < "$dir/first-$who"
  r0=$(origin_reqs)
  read -r n h b < <($LOAD "$PY" "$dir/probe.py" sample "$(port_of $who)" "$(hdr_of $who)" "$big/www" "$sample" "${working_set[@]}")
  sleep 0.2
  fetched[$who]=$(( $(origin_reqs) - r0 )); sampled[$who]=$n; hdr_hits[$who]=$h
  [ "${fetched[$who]}" = 0 ] || { echo "$who after its restart: ${fetched[$who]} of $n slices fetched from the origin, the first:" >&2
    tail -n +$(( r0 + 1 )) "$dir/origin/access.log" | head -5 | sed 's/^/  /' >&2; }
  [ "$b" = 0 ] || { echo "$who after its restart: $b of $n ranges had wrong bytes" >&2; exit 1; }
done
tg_recovered=$(metric 'tollgate_disk_recovered_objects{result="kept"}'); tg_dropped=$(metric 'tollgate_disk_recovered_objects{result="dropped"}')
declare -A end_rss
for who in nginx tollgate; do
  # shellcheck disable=SC2046
  end_rss[$who]=$(( $(rss_kb $(edge_pids $who)) / 1024 ))
done

# The table.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
pct() { awk -v n="$1" -v f="$2" 'BEGIN { if (n > 0) printf "%.1f", 100 * (n - f) / n; else print 0 }'; }
verdict() { if awk "BEGIN { exit !($1) }"; then echo met; else echo MISSED; fi; }
row() { printf '%-40s %12s %12s %9s  %s\n' "$@"; }
hit_n=$(pct "${sampled[nginx]}" "${fetched[nginx]}"); hit_t=$(pct "${sampled[tollgate]}" "${fetched[tollgate]}")
peak_n=$(( ${peak[nginx]} / 1024 )); peak_t=$(( ${peak[tollgate]} / 1024 ))
echo
row "measure" nginx tollgate "tg/nginx" "target (tollgate)"
row "(a) cold ${big_mb} MiB: TTFB ms" "${ttfb[nginx]}" "${ttfb[tollgate]}" "$(ratio "${ttfb[tollgate]}" "${ttfb[nginx]}")" \
  "<= origin's $origin_ttfb + 5: $(verdict "${ttfb[tollgate]} <= $origin_ttfb + 5")"
row "(a) cold ${big_mb} MiB: MiB/s" "${speed[nginx]}" "${speed[tollgate]}" "$(ratio "${speed[tollgate]}" "${speed[nginx]}")" "(origin alone: $origin_speed)"
row "(a) cold ${file_mb} MiB, median of $files: TTFB ms" "${cat_ttfb[nginx]}" "${cat_ttfb[tollgate]}" "$(ratio "${cat_ttfb[tollgate]}" "${cat_ttfb[nginx]}")" \
  "<= origin's $cat_origin_ttfb + 5: $(verdict "${cat_ttfb[tollgate]} <= $cat_origin_ttfb + 5")"
row "(b) warm whole ${file_mb} MiB, -c$whole_conns: MiB/s" "${wm[nginx]}" "${wm[tollgate]}" "$(ratio "${wm[tollgate]}" "${wm[nginx]}")" \
  ">= 1.2x: $(verdict "${wm[tollgate]} >= 1.2 * ${wm[nginx]}")"
row "(b) warm whole: p99 ms" "${wp[nginx]}" "${wp[tollgate]}" "$(ratio "${wp[tollgate]}" "${wp[nginx]}")" \
  "no worse: $(verdict "${wp[tollgate]} <= ${wp[nginx]}")"
row "(b) warm 1 MiB ranges, -c$conns: req/s" "${rr[nginx]}" "${rr[tollgate]}" "$(ratio "${rr[tollgate]}" "${rr[nginx]}")" \
  ">= 1.2x: $(verdict "${rr[tollgate]} >= 1.2 * ${rr[nginx]}")"
row "(b) warm 1 MiB ranges: p99 ms" "${rp[nginx]}" "${rp[tollgate]}" "$(ratio "${rp[tollgate]}" "${rp[nginx]}")" \
  "no worse: $(verdict "${rp[tollgate]} <= ${rp[nginx]}")"
hz=$(getconf CLK_TCK)
cpu_per_gib() { awk -v t="${cpu_ticks[$1$2]:-0}" -v g="${gib_read[$1$2]:-0}" -v hz="$hz" 'BEGIN { if (g > 0) printf "%.0f", 1000 * t / hz / g; else print "-" }'; }
for sc in whole range; do
  row "(b) edge CPU ms per GiB served, $sc" "$(cpu_per_gib nginx $sc)" "$(cpu_per_gib tollgate $sc)" \
    "$(ratio "$(cpu_per_gib tollgate $sc)" "$(cpu_per_gib nginx $sc)")" "(lower is better; nginx sendfile()s)"
done
row "(b) on disk after the warm-up MiB" "$disk_n" "$disk_t" "$(ratio "$disk_t" "$disk_n")" "(fetched: $(( big_mb + cat_mb )))"
row "(c) restart: first answer ms" "${answered[nginx]}" "${answered[tollgate]}" "" ""
row "(c) restart: first disk hit ms" "${first[nginx]}" "${first[tollgate]}" "" "(probe ${probed[nginx]} / ${probed[tollgate]} files)"
row "(c) restart: hits over ${sampled[tollgate]} slices %" "$hit_n" "$hit_t" "" ">= 99: $(verdict "$hit_t >= 99")"
row "(c)   origin fetches / header hits" "${fetched[nginx]}/${hdr_hits[nginx]}" "${fetched[tollgate]}/${hdr_hits[tollgate]}" "" ""
row "(d) RSS peak during (b) MiB" "$peak_n" "$peak_t" "$(ratio "$peak_t" "$peak_n")" \
  "<= $mem_mb + 64: $(verdict "$peak_t <= $mem_mb + 64")"
row "(d) RSS at the end MiB" "${end_rss[nginx]}" "${end_rss[tollgate]}" "$(ratio "${end_rss[tollgate]}" "${end_rss[nginx]}")" ""
echo
echo "(origin: nginx from files in $big ($fstype); catalogue $files x $file_mb MiB; tollgate --cache-size ${mem_mb}M --disk-cache-size ${disk_mb}M, $( [ "${TG_SLICE:-1}" = 1 ] && echo "slice option on" || echo "slice option off"); nginx slice 4m, max_size=${disk_mb}m)"
echo "(origin requests: warm-up nginx ${warm_reqs[nginx]}, tollgate ${warm_reqs[tollgate]}; during warm hits nginx ${hit_reqs[nginx]}, tollgate ${hit_reqs[tollgate]}; tollgate disk: $disk_hits hits before the restart, ${tg_skipped:-?} slices not written, restart kept ${tg_recovered:-?} objects and dropped ${tg_dropped:-?})"
echo "(medians of $rounds rounds of wrk -d${secs}s; $mode; $( [ "${DROP_CACHES:-0}" = 1 ] && echo "page cache dropped before every wrk run" || echo "page cache kept: $(free -g | awk '/Mem:/ {print $2}') GiB of RAM"); $("$NGINX" -v 2>&1); $(( $(date +%s) - started )) s)"
