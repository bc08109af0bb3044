#!/bin/sh
# bench/intake.sh BUILD: intake throughput and latency against nginx.
#
# Starts, on free loopback ports in a temporary directory: redis-server
# (appendonly yes, appendfsync everysec), `hookq serve` on it, and nginx
# (Debian nginx-light, its own config and prefix) answering `return 204`.
# Then:
#   1. wrk, keep-alive, 64 connections, 1 KiB webhook bodies (intake.lua),
#      DURATION seconds against each: req/s, p50, p99, and the ratio
#      (target: hookq >= 0.6 x nginx); with the CPU per request of every
#      process, and the ratio those costs allow if no core is ever idle;
#      and against the peer a team would write instead of hookq's intake:
#      a Node receiver storing with BullMQ (intake_bullmq.js: node:cluster,
#      one process per core, the same checks, queue.add with the webhook-id
#      as jobId, 202 after the add) on its own redis-server of the same kind;
#      its req/s, p50/p99 and Redis CPU per request beside hookq's;
#   2. bench_intake_rate at half of hookq's measured rate (fixed rate, latency
#      from each request's due time): p50/p99 (target: p99 <= 5 ms), with
#      Redis's own AOF stalls over 5 ms (LATENCY LATEST) beside it;
#   3. the same fixed rate against a second redis-server whose AOF is on
#      tmpfs (/dev/shm), so the disk's fsync stalls are out of the figure
#      and what remains is hookq's (and Redis's CPU) share of the tail.
# Everything it started is stopped by PID on exit.
set -eu
BUILD=${1:-build-release}
DURATION=${HQ_BENCH_DURATION:-5}
CONNS=64
here=$(cd "$(dirname "$0")" && pwd)
HOOKQ=$BUILD/hookq
RATE_BIN=$BUILD/bench/bench_intake_rate
for f in "$HOOKQ" "$RATE_BIN"; do
    [ -x "$f" ] || { echo "intake.sh: $f not built" >&2; exit 1; }
done
for t in wrk nginx redis-server redis-cli node npm; do
    command -v $t >/dev/null 2>&1 || [ -x /usr/sbin/$t ] || { echo "intake.sh: $t missing (make deps-bench)" >&2; exit 1; }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
if [ ! -d "$here/.node/node_modules/bullmq" ] ||
   ! cmp -s "$here/package.json" "$here/.node/package.json"; then
    echo "intake.sh: installing the BullMQ baseline into bench/.node"
    mkdir -p "$here/.node"
    cp "$here/package.json" "$here/.node/package.json"
    (cd "$here/.node" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

tmp=$(mktemp -d /tmp/hq-bench-intake.XXXXXX)
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null || true; done
    for p in $pids; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {
    i=0
    until python3 -c "import socket,sys; socket.create_connection(('127.0.0.1',$1),timeout=1)" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || { echo "intake.sh: nothing listens on $1" >&2; exit 1; }
        sleep 0.1
    done
}

rport=$(free_port)
# No worker drains the queue here, so the data set only grows (~1.2 KB a
# job); automatic AOF rewrites of it (a fork and a full copy every 64 MB)
# would dominate the figures, so they start only past 2 GB. In service,
# workers keep the data set small and rewrites cheap.
redis-server --port "$rport" --bind 127.0.0.1 --dir "$tmp" --save "" \
    --appendonly yes --appendfsync everysec --daemonize no \
    --auto-aof-rewrite-min-size 2gb --latency-monitor-threshold 5 \
    --logfile "$tmp/redis.log" &
redis_pid=$!
pids="$pids $!"
wait_port "$rport"

hport=$(free_port)
cat > "$tmp/hookq.ini" <<INI
[redis]
url = redis://127.0.0.1:$rport/0
[intake]
listen = 127.0.0.1:$hport
threads = 2
max_connections = 1024
[admin]
listen = off
[event post-create]
deliver = log
INI
"$HOOKQ" serve -c "$tmp/hookq.ini" 2>"$tmp/hookq.log" &
hookq_pid=$!
pids="$pids $!"
wait_port "$hport"

nport=$(free_port)
mkdir -p "$tmp/nginx/logs"
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"
cat > "$tmp/nginx/nginx.conf" <<CONF
$user_line
worker_processes 2;
pid $tmp/nginx/nginx.pid;
error_log $tmp/nginx/logs/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $tmp/nginx/body;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    scgi_temp_path $tmp/nginx/scgi;
    keepalive_requests 1000000;
    server {
        listen 127.0.0.1:$nport;
        location / { return 204; }
    }
}
CONF
"$NGINX" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -g 'daemon off;' &
nginx_pid=$!
pids="$pids $!"
wait_port "$nport"

# The BullMQ peer: its own redis-server, configured as hookq's.
bport=$(free_port)
redis-server --port "$bport" --bind 127.0.0.1 --dir "$tmp" --dbfilename bullmq.rdb \
    --appendfilename bullmq.aof --appenddirname bullmq-aof --save "" \
    --appendonly yes --appendfsync everysec --daemonize no \
    --auto-aof-rewrite-min-size 2gb --logfile "$tmp/redis-bullmq.log" &
bredis_pid=$!
pids="$pids $!"
wait_port "$bport"
qport=$(free_port)
NODE_PATH="$here/.node/node_modules" node "$here/intake_bullmq.js" "$qport" "$bport" 2>"$tmp/bullmq.log" &
node_pid=$!
pids="$pids $!"
wait_port "$qport"

# CPU time (clock ticks, user + system) of process $1, or of the children
# of $1 (nginx's workers) with "children".
tck=$(getconf CLK_TCK)
cpu_ticks() {
    if [ "${2:-}" = children ]; then
        cat /proc/[0-9]*/stat 2>/dev/null | awk -v pp="$1" '$4 == pp { t += $14 + $15 } END { print t + 0 }'
    else
        awk '{ print $14 + $15 }' "/proc/$1/stat"
    fi
}
# wrk's own CPU time in ticks goes to $tmp/wrk.cpu (from getrusage).
wrk_measured() {
    python3 -c '
import resource, subprocess, sys
rc = subprocess.call(sys.argv[2:], stdout=open(sys.argv[1] + ".out", "w"), stderr=subprocess.STDOUT)
r = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1] + ".cpu", "w").write("%d\n" % round((r.ru_utime + r.ru_stime) * 100))
sys.exit(rc)' "$tmp/wrk" "$@"
}

# wrk's --latency output: "Requests/sec: N" and "50% 1.23ms" lines.
run_wrk() {
    wrk_measured wrk -t2 -c$CONNS -d${DURATION}s --latency -s "$here/intake.lua" "$1" || {
        cat "$tmp/wrk.out" >&2; exit 1; }
    awk '
    function ms(v) { if (v ~ /us$/) return v * 0.001; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
    /Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    /Non-2xx/ { non2xx = $NF }
    END { printf "%.0f %.2f %.2f %d\n", rps, p50, p99, non2xx }' "$tmp/wrk.out"
}

r0=$(cpu_ticks $redis_pid) k0=$(cpu_ticks $hookq_pid)
set -- $(run_wrk "http://127.0.0.1:$hport/webhook")
h_rps=$1 h_p50=$2 h_p99=$3 h_bad=$4
r1=$(cpu_ticks $redis_pid) k1=$(cpu_ticks $hookq_pid) hw=$(cat "$tmp/wrk.cpu")
h_n=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
g0=$(cpu_ticks $nginx_pid children)
set -- $(run_wrk "http://127.0.0.1:$nport/webhook")
n_rps=$1 n_p50=$2 n_p99=$3
g1=$(cpu_ticks $nginx_pid children) nw=$(cat "$tmp/wrk.cpu")
n_n=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")
q0=$(cpu_ticks $bredis_pid) j0=$(( $(cpu_ticks $node_pid) + $(cpu_ticks $node_pid children) ))
set -- $(run_wrk "http://127.0.0.1:$qport/webhook")
q_rps=$1 q_p50=$2 q_p99=$3 q_bad=$4
q1=$(cpu_ticks $bredis_pid) j1=$(( $(cpu_ticks $node_pid) + $(cpu_ticks $node_pid children) ))
qw=$(cat "$tmp/wrk.cpu")
q_n=$(awk '/requests in/ { print $1 }' "$tmp/wrk.out")

printf "intake  hookq serve  %8s req/s  p50 %6s ms  p99 %6s ms  (non-2xx: %s)\n" "$h_rps" "$h_p50" "$h_p99" "$h_bad"
printf "intake  nginx 204    %8s req/s  p50 %6s ms  p99 %6s ms\n" "$n_rps" "$n_p50" "$n_p99"
printf "intake  node+BullMQ  %8s req/s  p50 %6s ms  p99 %6s ms  (non-2xx: %s)\n" "$q_rps" "$q_p50" "$q_p99" "$q_bad"
ratio=$(awk -v h="$h_rps" -v n="$n_rps" 'BEGIN { printf "%.2f", h / n }')
ok=$(awk -v r="$ratio" 'BEGIN { print (r >= 0.6) ? "ok" : "BELOW TARGET" }')
echo "intake  ratio hookq/nginx $ratio (target >= 0.6: $ok)"
awk -v h="$h_rps" -v q="$q_rps" 'BEGIN { printf "intake  ratio hookq/node+BullMQ %.2f (target >= 3: %s)\n", h / q, (h / q >= 3) ? "ok" : "BELOW TARGET" }'
# Where the CPU went, per request (1 tick = 1/CLK_TCK s), and the ratio the
# two machines' CPU costs would allow if no core were ever idle.
awk -v t="$tck" -v hn="$h_n" -v nn="$n_n" -v r=$((r1 - r0)) -v k=$((k1 - k0)) \
    -v hw="$hw" -v g=$((g1 - g0)) -v nw="$nw" 'BEGIN {
    us = 1e6 / t
    R = r * us / hn; K = k * us / hn; W = hw * us / hn
    G = g * us / nn; V = nw * us / nn
    printf "intake  CPU per request: hookq %.1f us + redis %.1f us + wrk %.1f us = %.1f us; nginx %.1f us + wrk %.1f us = %.1f us\n", K, R, W, K + R + W, G, V, G + V
    printf "intake  ratio if no core idled: %.2f (measured %.2f)\n", (G + V) / (K + R + W), 0
}' | sed "s/(measured 0.00)/(measured $ratio)/"
awk -v t="$tck" -v qn="$q_n" -v q=$((q1 - q0)) -v j=$((j1 - j0)) -v qw="$qw" -v hn="$h_n" -v r=$((r1 - r0)) 'BEGIN {
    us = 1e6 / t
    printf "intake  CPU per request: node+BullMQ: node %.1f us + redis %.1f us + wrk %.1f us; redis per request hookq/BullMQ: %.2f\n", j * us / qn, q * us / qn, qw * us / qn, (r / hn) / (q / qn)
}'

redis-cli -p "$rport" flushall >/dev/null
# The flush itself is a slow command: forget it, so that the stalls printed
# below are those of the fixed-rate run.
redis-cli -p "$rport" latency reset >/dev/null
half=$(( h_rps / 2 ))
line=$("$RATE_BIN" 127.0.0.1 "$hport" /webhook "$half" "$DURATION" $CONNS)
echo "intake  fixed rate (half of max): $line"
p99=$(echo "$line" | sed -n 's/.* p99 \([0-9.]*\) ms.*/\1/p')
echo "intake  p99 at half rate $p99 ms (target <= 5 ms: $(awk -v p="$p99" 'BEGIN { print (p <= 5) ? "ok" : "ABOVE TARGET" }'))"

# Redis's own stalls in that run: events over 5 ms, with the worst one.
redis-cli -p "$rport" latency latest | paste - - - - |
    awk 'NF >= 4 { n++; printf "intake  redis stalls during it: %s latest %s ms, worst %s ms\n", $1, $3, $4 }
         END { if (!n) print "intake  redis stalls during it: none over 5 ms" }'

# 3. The same with the AOF on tmpfs: the disk's fsync out of the picture.
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    shm=$(mktemp -d /dev/shm/hq-bench-aof.XXXXXX)
    rport2=$(free_port)
    redis-server --port "$rport2" --bind 127.0.0.1 --dir "$shm" --save "" \
        --appendonly yes --appendfsync everysec --daemonize no \
        --auto-aof-rewrite-min-size 2gb --logfile "$tmp/redis2.log" &
    pids="$pids $!"
    wait_port "$rport2"
    hport2=$(free_port)
    sed -e "s|^url = .*|url = redis://127.0.0.1:$rport2/0|" \
        -e "s|^listen = 127.0.0.1:$hport|listen = 127.0.0.1:$hport2|" "$tmp/hookq.ini" >"$tmp/hookq2.ini"
    "$HOOKQ" serve -c "$tmp/hookq2.ini" 2>"$tmp/hookq2.log" &
    pids="$pids $!"
    wait_port "$hport2"
    line=$("$RATE_BIN" 127.0.0.1 "$hport2" /webhook "$half" "$DURATION" $CONNS)
    echo "intake  fixed rate (half of max), AOF on tmpfs: $line"
    rm -rf "$shm"
fi
