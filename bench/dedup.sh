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
#   3. measure Redis's CPU for 10 s with nothing to forget yet (a trickle of
#      5 webhooks a second runs throughout, since the new layout forgets in
#      the enqueue calls that come after), then until every id is forgotten
#      and deleted: the CPU per id of expiring them is the second figure less
#      the first's rate over the same time.
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
keys() { redis-cli -p "$1" dbsize; }
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

# Idle rate: 10 s now, before any id can be forgotten.
b0o=$(cpu $old_r) b0n=$(cpu $new_r) b0=$(now)
sleep 10
b1o=$(cpu $old_r) b1n=$(cpu $new_r) b1=$(now)
# Until the stored ids are forgotten and deleted (a few keys of the trickle stay).
for l in old new; do
    rp=$(eval echo \$${l}_r)
    until [ "$(keys "$rp")" -lt 2000 ]; do sleep 1; done
    eval "${l}_gone=\$(now) ${l}_gc=\$(cpu $rp)"
done
awk -v ids="$IDS" -v on="$old_n" -v nn="$new_n" -v ob="$old_b" -v nb="$new_b" -v oc="$old_cpu" -v nc="$new_cpu" \
    -v b0o="$b0o" -v b1o="$b1o" -v b0n="$b0n" -v b1n="$b1n" -v b0="$b0" -v b1="$b1" \
    -v go="$old_gone" -v gco="$old_gc" -v gn="$new_gone" -v gcn="$new_gc" 'BEGIN {
    ro = (b1o - b0o) / (b1 - b0); rn = (b1n - b0n) / (b1 - b0)
    eo = ((gco - b1o) - ro * (go - b1)) * 1e6 / on
    en = ((gcn - b1n) - rn * (gn - b1)) * 1e6 / nn
    printf "dedup  old layout (a key per id): %7d ids  %4d B per id  redis %5.1f us per stored webhook  forgetting: %5.2f us per id (gone %.0f s after the idle window)\n", on, ob, oc, eo, go - b1
    printf "dedup  new layout (generations):  %7d ids  %4d B per id  redis %5.1f us per stored webhook  forgetting: %5.2f us per id (gone %.0f s after the idle window)\n", nn, nb, nc, en, gn - b1
    printf "dedup  memory per id new/old: %.2f (target <= 40 B: %s)\n", nb / ob, (nb <= 40) ? "ok" : "ABOVE TARGET"
}'
