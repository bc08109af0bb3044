#!/bin/sh
# bench/dedup.sh BUILD: what remembering webhook-ids costs Redis (issue 10).
#
# For two builds of hookq — BUILD's, and the last one before the dedup
# generations (the commit before "enqueue: dedup ids as 128-bit digests",
# or HQ_DEDUP_OLD=<commit>; built once into BUILD/bench-old-<commit>) —
# on a private redis-server each (AOF off: memory and CPU are the figures):
#   1. store IDS webhooks (default 1,000,000), each with a new webhook-id,
#      through `hookq serve` (wrk, 32 connections, small bodies), with
#      dedup_ttl = TTL seconds (default 600: storing must take less);
#   2. delete the queued jobs (the q: lists), so that what is left is what
#      dedup holds: Redis used_memory per id;
#   3. wait until every id is forgotten and deleted (a trickle of 5
#      webhooks a second runs throughout, since the new layout forgets in the
#      enqueue calls that come after) and take what that cost Redis from its
#      own accounts (below): the CPU per id of expiring them.
# Prints both layouts' figures side by side. Takes about 1.25 x TTL plus
# twice the time to store IDS (the stores run one after the other).
# Everything it started is stopped by PID on exit.
set -eu
BUILD=${1:-build-release}
IDS=${HQ_DEDUP_IDS:-1000000}
TTL=${HQ_DEDUP_TTL:-600}
CONNS=32
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
case $BUILD in /*) ;; *) BUILD=$root/$BUILD ;; esac
[ -x "$BUILD/hookq" ] || { echo "dedup.sh: $BUILD/hookq not built" >&2; exit 1; }
for t in wrk redis-server redis-cli curl cmake; do
    command -v $t >/dev/null 2>&1 || { echo "dedup.sh: $t missing (make deps-bench)" >&2; exit 1; }
done

old=${HQ_DEDUP_OLD:-}
if [ -z "$old" ]; then
    new=$(git -C "$root" log -1 --format=%H --grep='^enqueue: dedup ids as 128-bit digests')
    [ -n "$new" ] || { echo "dedup.sh: cannot find the dedup commit; set HQ_DEDUP_OLD" >&2; exit 1; }
    old=$new^
fi
old=$(git -C "$root" rev-parse --short=12 "$old")
OLD_BUILD=$BUILD/bench-old-$old
if [ ! -x "$OLD_BUILD/hookq" ]; then
    echo "dedup.sh: building hookq at $old (the old layout) in $OLD_BUILD"
    rm -rf "$OLD_BUILD"
    mkdir -p "$OLD_BUILD/src"
    git -C "$root" archive "$old" | tar -x -C "$OLD_BUILD/src"
    cmake -S "$OLD_BUILD/src" -B "$OLD_BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$OLD_BUILD" -j 2 --target hookq >/dev/null
fi

tmp=$(mktemp -d /tmp/hq-bench-dedup.XXXXXX)
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
        i=$((i + 1)); [ $i -lt 100 ] || { echo "dedup.sh: nothing listens on $1" >&2; exit 1; }
        sleep 0.1
    done
}
info() { redis-cli -p "$1" info "$2" | tr -d '\r' | sed -n "s/^$3:\(.*\)/\1/p"; }
cpu() { redis-cli -p "$1" info cpu | tr -d '\r' | awk -F: '/^used_cpu_(sys|user):/ { t += $2 } END { printf "%.6f\n", t }'; }
now() { date +%s.%N; }

# start NAME HOOKQ: a redis-server and `hookq serve` on it; sets ${NAME}_r
# (redis port) and ${NAME}_h (intake port).
start() {
    rp=$(free_port) hp=$(free_port)
    mkdir -p "$tmp/$1"
    redis-server --port "$rp" --bind 127.0.0.1 --dir "$tmp/$1" --save "" --appendonly no \
        --daemonize no --logfile "$tmp/$1/redis.log" &
    pids="$pids $!"
    wait_port "$rp"
    cat > "$tmp/$1/hookq.ini" <<INI
[redis]
url = redis://127.0.0.1:$rp/0
[intake]
listen = 127.0.0.1:$hp
dedup_ttl = ${TTL}s
threads = 2
max_connections = 1024
[admin]
listen = off
[event post-create]
deliver = log
INI
    "$2" serve -c "$tmp/$1/hookq.ini" 2>"$tmp/$1/hookq.log" &
    pids="$pids $!"
    wait_port "$hp"
    eval "${1}_r=$rp ${1}_h=$hp"
}

# store NAME: IDS webhooks through the intake, then the queue deleted.
# Prints "ids stored, bytes per id, us of redis CPU per stored webhook".
store() {
    rp=$(eval echo \$${1}_r) hp=$(eval echo \$${1}_h)
    m0=$(info "$rp" memory used_memory) c0=$(cpu "$rp")
    # Each wrk thread stops sending after its share; wrk itself runs until
    # told (SIGINT: it prints its summary), once Redis has them all.
    wrk -t2 -c$CONNS -d3600s -s "$here/dedup.lua" "http://127.0.0.1:$hp/webhook" -- \
        $((IDS / 2)) "$1$(date +%s)" >"$tmp/$1/wrk.out" 2>&1 &
    wrk_pid=$!
    until [ "$(redis-cli -p "$rp" hget '{hookq:0}:stats' accepted)" -ge $((IDS / 2 * 2)) ] 2>/dev/null; do
        kill -0 $wrk_pid 2>/dev/null || { cat "$tmp/$1/wrk.out" >&2; exit 1; }
        sleep 0.5
    done
    sleep 1
    kill -INT $wrk_pid
    wait $wrk_pid || true
    c1=$(cpu "$rp")
    n=$(redis-cli -p "$rp" hget '{hookq:0}:stats' accepted)
    redis-cli -p "$rp" --scan --pattern '{hookq:0}:q:*' | xargs redis-cli -p "$rp" unlink >/dev/null
    sleep 1 # UNLINK frees in the background
    m1=$(info "$rp" memory used_memory)
    grep -q 'other than 202: 0$' "$tmp/$1/wrk.out" || { cat "$tmp/$1/wrk.out" >&2; exit 1; }
    echo "$n $(( (m1 - m0) / n )) $(awk -v a="$c0" -v b="$c1" -v n="$n" 'BEGIN { printf "%.1f", (b - a) * 1e6 / n }')"
}

start old "$OLD_BUILD/hookq"
start new "$BUILD/hookq"
echo "== dedup: $IDS webhook-ids through hookq serve, dedup_ttl ${TTL}s, redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
t_old=$(now); set -- $(store old); old_n=$1 old_b=$2 old_cpu=$3; old_end=$(now)
t_new=$(now); set -- $(store new); new_n=$1 new_b=$2 new_cpu=$3; new_end=$(now)
# The newest generation the stored ids went to.
# The list of generations as decimal text (enqueue.lua stores it as
# big-endian doubles; older builds as text).
dd_text() {
    redis-cli -p "$1" --raw get '{hookq:0}:dd' | python3 -c '
import struct, sys
b = sys.stdin.buffer.read()
if b[:1].isdigit():
    print(b.decode().strip())
elif len(b) >= 8:
    n = len(b) // 8
    print(" ".join("%d" % x for x in struct.unpack(">%dd" % n, b[:8 * n])))'
}
new_g=$(dd_text $new_r | awk '{ print $1 - 1 }')
for l in old new; do
    awk -v s="$(eval echo \$t_$l)" -v e="$(eval echo \$${l}_end)" -v t="$TTL" 'BEGIN {
        if (e - s > t - 15) { print "dedup.sh: storing took " e - s " s, too close to the ttl: raise HQ_DEDUP_TTL" > "/dev/stderr"; exit 1 } }'
done

# The trickle: 5 webhooks a second with new ids, to both.
(i=0; while :; do i=$((i + 1))
    for hp in $old_h $new_h; do
        curl -s -o /dev/null -H 'Content-Type: application/json' -H "webhook-id: trickle-$i" \
            --data '{"code":"post-create","data":{"customer_id":"t"}}' "http://127.0.0.1:$hp/webhook" || true
    done; sleep 0.2; done) &
pids="$pids $!"

# The cost of forgetting, from Redis's own accounts rather than its process
# CPU (which the trickle and a shared machine make too noisy for this):
# the active expiry cycle's time (INFO stats expire_cycle_cpu_milliseconds:
# the old layout's keys expire one by one) plus the time the enqueue calls
# spent beyond their usual cost (INFO commandstats evalsha: the new layout's
# calls delete expired generations), the usual cost per call measured over
# 20 s of the trickle before anything can expire.
expire_ms() { info "$1" stats expire_cycle_cpu_milliseconds; }
evalsha() { redis-cli -p "$1" info commandstats | tr -d '\r' | sed -n 's/^cmdstat_evalsha:calls=\([0-9]*\),usec=\([0-9]*\),.*/\1 \2/p'; }
sleep 5
for l in old new; do
    rp=$(eval echo \$${l}_r)
    eval "${l}_e0=\"\$(evalsha $rp)\""
done
sleep 20
for l in old new; do
    rp=$(eval echo \$${l}_r)
    eval "${l}_e1=\"\$(evalsha $rp)\" ${l}_x1=\$(expire_ms $rp)"
done
# Until the stored ids are forgotten and deleted: no key of the old layout
# named after a stored id (msg_...: the trickle's are trickle-...) and no
# generation of the new layout that took them (those up to $new_g) left.
old_gone() { [ -z "$(redis-cli -p $old_r --scan --pattern '{hookq:0}:dd:msg_*' | head -1)" ]; }
new_gone() {
    dd_text $new_r |
        awk -v g="$new_g" '{ for (i = 2; i <= NF; i += 6) if ($i <= g) left = 1 } END { exit left }'
}
for l in old new; do
    rp=$(eval echo \$${l}_r)
    until ${l}_gone; do sleep 2; done
    eval "${l}_e2=\"\$(evalsha $rp)\" ${l}_x2=\$(expire_ms $rp) ${l}_gone=\$(now)"
done
forget() { # calls0 usec0 calls1 usec1 calls2 usec2 expire_ms1 expire_ms2 ids
    awk -v c0="$1" -v u0="$2" -v c1="$3" -v u1="$4" -v c2="$5" -v u2="$6" -v x1="$7" -v x2="$8" -v n="$9" 'BEGIN {
        per = (c1 > c0) ? (u1 - u0) / (c1 - c0) : 0
        printf "%.2f", ((x2 - x1) * 1000 + (u2 - u1) - (c2 - c1) * per) / n }'
}
old_f=$(forget $old_e0 $old_e1 $old_e2 $old_x1 $old_x2 $old_n)
new_f=$(forget $new_e0 $new_e1 $new_e2 $new_x1 $new_x2 $new_n)
awk -v on="$old_n" -v nn="$new_n" -v ob="$old_b" -v nb="$new_b" -v oc="$old_cpu" -v nc="$new_cpu" \
    -v of="$old_f" -v nf="$new_f" -v go="$old_gone" -v gn="$new_gone" -v to="$t_old" -v tn="$t_new" 'BEGIN {
    printf "dedup  old layout (a key per id): %7d ids  %4d B per id  redis %5.1f us per stored webhook  forgetting: %5.2f us per id (all gone %.0f s after the first was stored)\n", on, ob, oc, of, go - to
    printf "dedup  new layout (generations):  %7d ids  %4d B per id  redis %5.1f us per stored webhook  forgetting: %5.2f us per id (all gone %.0f s after the first was stored)\n", nn, nb, nc, nf, gn - tn
    printf "dedup  memory per id new/old: %.2f (target <= 40 B: %s)\n", nb / ob, (nb <= 40) ? "ok" : "ABOVE TARGET"
}'
