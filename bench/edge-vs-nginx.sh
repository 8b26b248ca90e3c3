#!/usr/bin/env bash
# nginx (secure_link, proxy_cache keyed by $uri, access log off, keep-alive) and `tollgate edge`
# in front of the same origin, measured with wrk, taking turns in one run:
#   hit1k    cached 1 KiB objects behind a valid token
#   hit100k  cached 100 KiB objects behind a valid token
#   refused  wrong token (403)
#   miss     a new signed path per request (cache miss, origin fetch)
# Prints requests/s, p99 latency and the edge's CPU time per request (user + system, from /proc)
# for each, the ratio tollgate/nginx, and resident memory. Each scenario runs ROUNDS times
# (default 3), nginx and tollgate alternating; the medians are reported.
#
# PIN=1 (the default on two or more cores): wrk (one thread) and the origin run on CPU 0, and
# each edge runs alone on CPU 1 with one worker: the figures are per core, and the load
# generator does not compete with the edge. PIN=0: everything shares all cores (wrk with two
# threads, each edge with one worker per core); there the kernel's split of CPU time between
# wrk's threads and the edge's decides much of the result (more edge threads than cores win
# CPU share from wrk, for nginx and tollgate alike), so single runs vary by 20%.
# VERBOSE=1 prints every round to stderr.
# Usage: [PIN=1] [VERBOSE=1] [ROUNDS=3] [SCENARIOS="hit1k ..."] bench/edge-vs-nginx.sh [SECONDS] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns="${2:-64}"
rounds="${ROUNDS:-3}"
. bench/lib.sh
O=$(free_port); N=$(free_port); T=$(free_port)
if [ "${PIN:-1}" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
  LOAD="taskset -c 0"; EDGE="taskset -c 1"; wrk_threads=1; edge_workers=1
  mode="pinned: wrk -t1 and the origin on CPU 0, each edge alone on CPU 1 with one worker"
else
  LOAD=""; EDGE=""; wrk_threads=2; edge_workers=$(nproc)
  mode="shared: wrk -t2, origin and edges on all $(nproc) cores, one edge worker per core"
fi

mkdir -p "$dir/www" "$dir/origin" "$dir/edge"
# nginx's cache files live in memory (tmpfs) when the machine has one, as tollgate's cache does:
# on disk nginx pays for a disk tollgate does not use, and its write-back can land in the next
# tollgate run.
ncache="$dir/edge/cache"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  ncache=$(mktemp -d /dev/shm/tollgate-bench-nginx.XXXXXX); scratch+=("$ncache")
fi
head -c 1024 /dev/urandom > "$dir/www/1k.bin"
head -c 102400 /dev/urandom > "$dir/www/100k.bin"
mkdir -p "$dir/www/miss"
common=$(nginx_common 16384)

# The origin: nginx serving files; any path under /miss/ answers with the 1 KiB file.
cat > "$dir/origin/nginx.conf" <<CONF
worker_processes 1; pid $dir/origin/nginx.pid; error_log $dir/origin/error.log warn; $common
http { access_log off; tcp_nopush off; $(temps "$dir/origin")
  server { listen 127.0.0.1:$O; root $dir/www;
    location /miss/ { try_files /1k.bin =404; } } }
CONF
# The nginx edge: the reference Gcore edge (secure_key type 2) with keep-alive to the origin.
# Its keys zone holds 2 million keys, more than the miss runs store: with 50 MiB (400,000
# keys), nginx's cache manager, evicting 100 files per turn, fell behind the misses of two
# workers, and nginx answered 500 ("could not allocate node in cache keys zone").
cat > "$dir/edge/nginx.conf" <<CONF
worker_processes $edge_workers; pid $dir/edge/nginx.pid; error_log $dir/edge/error.log warn; $common
http { access_log off; tcp_nopush off; server_tokens off; $(temps "$dir/edge")
  proxy_cache_path $ncache keys_zone=edge:256m max_size=1g inactive=60m use_temp_path=off;
  upstream origin { server 127.0.0.1:$O; keepalive 64; }
  server { listen 127.0.0.1:$N reuseport;
    location / {
      secure_link \$arg_md5,\$arg_expires;
      secure_link_md5 "\$secure_link_expires\$uri secret_key";
      if (\$secure_link = "")  { return 403; }
      if (\$secure_link = "0") { return 410; }
      proxy_pass http://origin; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_cache edge; proxy_cache_key \$uri; proxy_cache_valid 200 60m; } } }
CONF
$LOAD "$NGINX" -p "$dir/origin" -c "$dir/origin/nginx.conf" -e "$dir/origin/error.log" -g 'daemon off;' & pids+=($!)
$EDGE "$NGINX" -p "$dir/edge" -c "$dir/edge/nginx.conf" -e "$dir/edge/error.log" -g 'daemon off;' & pids+=($!)
nginx_master=$!
cat > "$dir/resources.json" <<JSON
[{"id": 1, "cname": "cdn.example.com", "origin": "127.0.0.1:$O",
  "options": {"secure_key": {"enabled": true, "key": "secret_key", "type": 2}}}]
JSON
$EDGE "$TG" edge --resources "$dir/resources.json" --listen "127.0.0.1:$T" --cache-size 1G \
  --workers "$edge_workers" 2>"$dir/tollgate.log" & pids+=($!)
tollgate_pid=$!
sleep 1

sign() { "$TG" sign --key secret_key --path "$1" --ttl 86400; }
L1K=$(sign /1k.bin); L100K=$(sign /100k.bin)
BAD="/1k.bin?md5=AAAAAAAAAAAAAAAAAAAAAA&expires=$(( $(date +%s) + 86400 ))"
# Unique signed paths for the miss runs, a separate set per server and per run: 100,000 per
# second of the run, more than either edge misses per core (a run that used them all would
# repeat nothing but get 403s for the missing ones, and is refused below).
npaths=$(( secs * 100000 ))
for who in nginx tollgate; do
  for round in $(seq 1 "$rounds"); do
    seq 1 "$npaths" | sed "s|^|/miss/$who-$round-|" | "$TG" sign --batch --key secret_key --ttl 86400 > "$dir/miss-$who-$round.txt"
  done
done
cat > "$dir/miss.lua" <<'LUA'
local paths = {}
local i = 0
local threads = 0
function setup(thread)
  thread:set("id", threads)
  threads = threads + 1
end
function init(args)
  for line in io.lines(args[1]) do paths[#paths + 1] = line end
  -- Each wrk thread starts at its own offset (of two) so threads do not share paths.
  i = id * math.floor(#paths / 2)
end
function request()
  i = i + 1
  return wrk.format("GET", paths[i], {["Host"] = "cdn.example.com"})
end
LUA
curl -s -o /dev/null -H 'Host: cdn.example.com' "http://127.0.0.1:$N$L1K"
curl -s -o /dev/null -H 'Host: cdn.example.com' "http://127.0.0.1:$N$L100K"
curl -s -o /dev/null -H 'Host: cdn.example.com' "http://127.0.0.1:$T$L1K"
curl -s -o /dev/null -H 'Host: cdn.example.com' "http://127.0.0.1:$T$L100K"
for u in "$L1K" "$L100K"; do
  for p in $N $T; do
    c=$(curl -s -o /dev/null -w '%{http_code}' -H 'Host: cdn.example.com' "http://127.0.0.1:$p$u")
    [ "$c" = 200 ] || { echo "warm-up got $c from port $p" >&2; exit 1; }
  done
done

run() { # port target [lua-args...]
  local port=$1 target=$2; shift 2
  if [ "$target" = miss ]; then
    $LOAD wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" --latency -s "$dir/miss.lua" "http://127.0.0.1:$port" -- "$@"
  else
    $LOAD wrk -t"$wrk_threads" -c"$conns" -d"${secs}s" --latency -H 'Host: cdn.example.com' "http://127.0.0.1:$port$target"
  fi
}
non2xx() { awk '/Non-2xx/ {print $NF}'; }
# CPU time (user + system, clock ticks) of processes; requests a wrk run made.
cpu_ticks() { local total=0; for p in "$@"; do total=$(( total + $(awk '{print $14 + $15}' /proc/$p/stat 2>/dev/null || echo 0) )); done; echo $total; }
requests() { awk '/requests in/ {print $1}'; }
us_per_req() { awk -v t="$1" -v n="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { printf "%.1f", n ? t * 1e6 / hz / n : 0 }'; }
rss_kb() { local total=0; for p in "$@"; do total=$(( total + $(awk '/VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0) )); done; echo $total; }

printf '%-9s %12s %12s %8s %10s %10s %10s %10s\n' scenario nginx_rps tollgate_rps ratio nginx_p99 tg_p99 nginx_cpu tg_cpu
workers=$(pgrep -P "$nginx_master" | tr '\n' ' ')
for scenario in ${SCENARIOS:-hit1k hit100k refused miss}; do
  if [ "$scenario" = miss ]; then
    rss_hits="nginx $(( $(rss_kb $nginx_master $workers) / 1024 )) MiB, tollgate $(( $(rss_kb $tollgate_pid) / 1024 )) MiB"
  fi
  case $scenario in
    hit1k) target=$L1K ;; hit100k) target=$L100K ;; refused) target=$BAD ;; miss) target=miss ;;
  esac
  rns=(); rts=(); pns=(); pts=(); cns=(); cts=()
  for round in $(seq 1 "$rounds"); do
    c0=$(cpu_ticks $nginx_master $workers)
    if [ "$scenario" = miss ]; then out_n=$(run $N miss "$dir/miss-nginx-$round.txt"); else out_n=$(run $N "$target"); fi
    c1=$(cpu_ticks $nginx_master $workers); t0=$(cpu_ticks $tollgate_pid)
    if [ "$scenario" = miss ]; then out_t=$(run $T miss "$dir/miss-tollgate-$round.txt"); else out_t=$(run $T "$target"); fi
    t1=$(cpu_ticks $tollgate_pid)
    cns+=("$(us_per_req $((c1 - c0)) "$(echo "$out_n" | requests)")")
    cts+=("$(us_per_req $((t1 - t0)) "$(echo "$out_t" | requests)")")
    rns+=("$(echo "$out_n" | rps)"); rts+=("$(echo "$out_t" | rps)")
    pns+=("$(echo "$out_n" | p99)"); pts+=("$(echo "$out_t" | p99)")
    [ -z "${VERBOSE:-}" ] || echo "  $scenario round $round: nginx ${rns[-1]} req/s p99 ${pns[-1]} ms, tollgate ${rts[-1]} req/s p99 ${pts[-1]} ms" >&2
    if [ "$scenario" != refused ]; then
      for who in nginx tollgate; do
        if [ $who = nginx ]; then o=$out_n; else o=$out_t; fi
        bad=$(echo "$o" | non2xx)
        [ -z "$bad" ] || { echo "$scenario: $bad non-2xx responses from $who, the figures would be wrong" >&2; exit 1; }
      done
    fi
  done
  rn=$(median "${rns[@]}"); rt=$(median "${rts[@]}"); pn=$(median "${pns[@]}"); pt=$(median "${pts[@]}")
  cn=$(median "${cns[@]}"); ct=$(median "${cts[@]}")
  ratio=$(awk -v a="$rt" -v b="$rn" 'BEGIN { printf "%.2f", a / b }')
  printf '%-9s %12s %12s %8s %8sms %8sms %8sus %8sus\n' "$scenario" "$rn" "$rt" "${ratio}x" "$pn" "$pt" "$cn" "$ct"
done
[ -n "${rss_hits:-}" ] && echo "resident memory after the hit runs: $rss_hits"
echo "resident memory at the end: nginx edge (master + workers) $(( $(rss_kb $nginx_master $workers) / 1024 )) MiB, tollgate edge $(( $(rss_kb $tollgate_pid) / 1024 )) MiB"
echo "(nginx keeps its cache in files ($ncache), outside its RSS; tollgate keeps it in memory, up to --cache-size)"
echo "(cpu: the edge's user + system CPU time per request, from /proc; lower is better)"
echo "(medians of $rounds rounds of wrk -c$conns -d${secs}s; $mode; $("$NGINX" -v 2>&1))"
