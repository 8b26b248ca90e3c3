# Shared by the wrk benchmarks: sourced after `cd` to the repository root. Installs wrk and
# nginx when missing, builds (or takes TG_BIN), makes a scratch directory whose processes are
# stopped and files removed on exit (KEEP=1 keeps them), and parses wrk's output.
for tool in wrk nginx; do
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
    echo "installing $tool" >&2; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool" >/dev/null; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
# TG_BIN: another tollgate binary to measure (e.g. an older build, for before/after figures).
if [ -n "${TG_BIN:-}" ]; then TG=$TG_BIN; else cargo build --release -q -p tollgate; TG=target/release/tollgate; fi

dir=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
pids=()
# Scratch directories removed on exit: $dir, and any a bench adds.
scratch=("$dir")
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "${scratch[@]}"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# nginx.conf pieces: the main-context lines every bench nginx shares (workers write cache files
# in private temp dirs: as root they must run as root too), and temp paths under a directory.
nginx_common() { echo "$( [ "$(id -u)" = 0 ] && echo "user root;") events { worker_connections ${1:-4096}; }"; }
temps() { echo "client_body_temp_path $1/body; proxy_temp_path $1/proxy; fastcgi_temp_path $1/fcgi; uwsgi_temp_path $1/uwsgi; scgi_temp_path $1/scgi;"; }

# wrk output -> requests/s; p99 in ms; the median of the arguments.
rps() { awk '/Requests\/sec/ {print $2}'; }
p99() { awk '$1 == "99%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v=v/1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v=v*1000}; print v}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
