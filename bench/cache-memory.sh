#!/usr/bin/env bash
# Does --cache-size bound the edge's memory? Fills `tollgate edge --cache-size SIZE` with many
# more small objects (1 KiB, the worst case for per-object overhead) than fit, through wrk,
# then prints the cache's own accounting (/metrics) and the process's resident memory.
# Usage: bench/cache-memory.sh [CACHE_SIZE=128M] [SECONDS=20]
set -euo pipefail
cd "$(dirname "$0")/.."
size="${1:-128M}"
secs="${2:-20}"
. bench/lib.sh
O=$(free_port); T=$(free_port); A=$(free_port)
mkdir -p "$dir/www" "$dir/origin"
head -c 1024 /dev/urandom > "$dir/www/1k.bin"
cat > "$dir/origin/nginx.conf" <<CONF
worker_processes 1; pid $dir/origin/nginx.pid; error_log $dir/origin/error.log warn; $(nginx_common)
http { access_log off; $(temps "$dir/origin")
  server { listen 127.0.0.1:$O; root $dir/www; location / { try_files /1k.bin =404; } } }
CONF
"$NGINX" -p "$dir/origin" -c "$dir/origin/nginx.conf" -e "$dir/origin/error.log" -g 'daemon off;' & pids+=($!)
cat > "$dir/resources.json" <<JSON
[{"id": 1, "cname": "cdn.example.com", "origin": "127.0.0.1:$O", "options": {}}]
JSON
"$TG" edge --resources "$dir/resources.json" --listen "127.0.0.1:$T" --admin "127.0.0.1:$A" \
  --cache-size "$size" 2>"$dir/tollgate.log" & pids+=($!)
tg=$!
sleep 1
cat > "$dir/fill.lua" <<'LUA'
local n = 0
local id = 0
function setup(thread) thread:set("id", id); id = id + 1 end
function request()
  n = n + 1
  return wrk.format("GET", "/o/" .. id .. "-" .. n, {["Host"] = "cdn.example.com"})
end
LUA
rss() { awk '/VmRSS/ {print int($2 / 1024)}' /proc/$tg/status; }
echo "resident before: $(rss) MiB"
out=$(wrk -t2 -c32 -d"${secs}s" -s "$dir/fill.lua" "http://127.0.0.1:$T")
echo "$out" | awk '/requests in/ {print "objects requested: " $1}'
sleep 2
metrics=$(curl -s "http://127.0.0.1:$A/metrics")
echo "$metrics" | awk '/^tollgate_cache_objects / {print "objects held: " $2} /^tollgate_cache_bytes / {printf "cache accounting: %d MiB\n", $2 / 1048576}'
echo "resident after: $(rss) MiB (--cache-size $size)"
