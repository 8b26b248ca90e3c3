#!/usr/bin/env bash
# The cost of query string forwarding per playlist request: one cached live playlist (six
# segments) served by `tollgate edge` from three resources in the same run:
#   plain   secure token on, no forwarding (a plain cached hit)
#   copy    Gcore's query string forwarding (the playlist's md5/expires copied into each link)
#   sign    sign_each_directory (each link signed for its own directory)
# Prints requests/s and p99 for each and the ratio to plain. Rounds alternate; medians reported.
# Usage: bench/playlist-rewrite.sh [SECONDS_PER_RUN] [CONNECTIONS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-10}"
conns="${2:-64}"
rounds="${ROUNDS:-3}"
. bench/lib.sh
O=$(free_port); T=$(free_port)

mkdir -p "$dir/www/live" "$dir/origin"
{
  printf '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n#EXT-X-MEDIA-SEQUENCE:1200\n'
  for i in $(seq 1200 1205); do printf '#EXTINF:4.000000,\nsegment_%05d.ts\n' "$i"; done
} > "$dir/www/live/chunklist.m3u8"
common=$(nginx_common)
cat > "$dir/origin/nginx.conf" <<CONF
worker_processes 1; pid $dir/origin/nginx.pid; error_log $dir/origin/error.log warn; $common
http { access_log off; tcp_nopush off; $(temps "$dir/origin")
  types { application/vnd.apple.mpegurl m3u8; }
  server { listen 127.0.0.1:$O; root $dir/www; } }
CONF
"$NGINX" -p "$dir/origin" -c "$dir/origin/nginx.conf" -e "$dir/origin/error.log" -g 'daemon off;' & pids+=($!)
qsf() { echo "\"query_string_forwarding\": {\"enabled\": true, \"forward_from_file_types\": [\"m3u8\"], \"forward_to_file_types\": [\"ts\"], \"forward_only_keys\": [\"md5\", \"expires\"], \"sign_each_directory\": $1}"; }
sk='"secure_key": {"enabled": true, "key": "secret_key", "type": 2}'
cat > "$dir/resources.json" <<JSON
[{"id": 1, "cname": "plain.example.com", "origin": "127.0.0.1:$O", "options": {$sk}},
 {"id": 2, "cname": "copy.example.com", "origin": "127.0.0.1:$O", "options": {$sk, $(qsf false)}},
 {"id": 3, "cname": "sign.example.com", "origin": "127.0.0.1:$O", "options": {$sk, $(qsf true)}}]
JSON
"$TG" edge --resources "$dir/resources.json" --listen "127.0.0.1:$T" 2>"$dir/tollgate.log" & pids+=($!)
sleep 1
# plain: a token for the playlist itself; copy and sign: a directory token (Gcore's form for
# forwarding). Same expiry, same length.
DIRLINK=$("$TG" sign --key secret_key --path /live/ --expires 2147483647)
declare -A TARGET
TARGET[plain]=$("$TG" sign --key secret_key --path /live/chunklist.m3u8 --expires 2147483647)
TARGET[copy]="/live/chunklist.m3u8?${DIRLINK#*\?}"
TARGET[sign]=${TARGET[copy]}
for h in plain copy sign; do
  c=$(curl -s -o "$dir/$h.out" -w '%{http_code}' -H "Host: $h.example.com" "http://127.0.0.1:$T${TARGET[$h]}")
  [ "$c" = 200 ] || { echo "warm-up of $h got $c" >&2; exit 1; }
done
grep -q 'md5=' "$dir/copy.out" && grep -q 'md5=' "$dir/sign.out" || { echo "playlists were not rewritten" >&2; exit 1; }

declare -A R P
for round in $(seq 1 "$rounds"); do
  for h in plain copy sign; do
    out=$(wrk -t2 -c"$conns" -d"${secs}s" --latency -H "Host: $h.example.com" "http://127.0.0.1:$T${TARGET[$h]}")
    R[$h]+="$(echo "$out" | rps) "; P[$h]+="$(echo "$out" | p99) "
  done
done
base=$(median ${R[plain]})
printf '%-6s %12s %8s %10s\n' mode rps vs_plain p99
for h in plain copy sign; do
  r=$(median ${R[$h]}); p=$(median ${P[$h]})
  printf '%-6s %12s %7sx %8sms\n' "$h" "$r" "$(awk -v a="$r" -v b="$base" 'BEGIN { printf "%.2f", a / b }')" "$p"
done
echo "(playlist $(wc -c < "$dir/www/live/chunklist.m3u8") bytes, 6 segments; medians of $rounds rounds of wrk -t2 -c$conns -d${secs}s on $(nproc) cores)"
