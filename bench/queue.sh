#!/bin/sh
# bench/queue.sh: the queue benchmark of issue 2 §5. On one private
# redis-server: hookq (bench_queue: enqueue 200,000 no-op jobs over 1,000 keys,
# pipelined, then drain them with one worker process), then the baseline,
# BullMQ (pinned in bench/package.json, installed into bench/.node) adding the
# same number with addBulk and processing them with one Worker at
# concurrency 50. Prints both and the hookq/BullMQ processing-rate ratio.
# Usage: bench/queue.sh [BUILD_DIR]   (env JOBS, KEYS to change the size)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-${HQ_BUILD:-$here/../build-release}}
jobs=${JOBS:-200000}
keys=${KEYS:-1000}
bench_queue=$build/bench/bench_queue
[ -x "$bench_queue" ] || { echo "queue.sh: $bench_queue not built" >&2; exit 1; }

if [ ! -d "$here/.node/node_modules/bullmq" ] ||
   ! cmp -s "$here/package.json" "$here/.node/package.json"; then
    echo "queue.sh: installing the BullMQ baseline into bench/.node"
    mkdir -p "$here/.node"
    cp "$here/package.json" "$here/.node/package.json"
    (cd "$here/.node" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

dir=$(mktemp -d /tmp/hq-bench-queue.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save "" --appendonly no \
    --daemonize no --logfile "$dir/redis.log" &
redis_pid=$!
trap 'kill $redis_pid 2>/dev/null; wait $redis_pid 2>/dev/null; rm -rf "$dir"' EXIT INT TERM
i=0
until redis-cli -p "$port" ping >/dev/null 2>&1; do
    i=$((i + 1)); [ $i -lt 100 ] || { echo "queue.sh: redis-server did not start" >&2; exit 1; }
    sleep 0.05
done

echo "== queue: $jobs no-op jobs over $keys keys, one worker process, redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
"$bench_queue" --url "redis://127.0.0.1:$port/0" --jobs "$jobs" --keys "$keys" | tee "$dir/hookq.out"
redis-cli -p "$port" flushall >/dev/null
redis-cli -p "$port" config resetstat >/dev/null
NODE_PATH="$here/.node/node_modules" node "$here/queue_bullmq.js" "$port" "$jobs" "$keys" | tee "$dir/bullmq.out"
python3 - "$dir/hookq.out" "$dir/bullmq.out" <<'PY'
import json, sys
h = json.loads(open(sys.argv[1]).read().splitlines()[-1])
b = json.loads(open(sys.argv[2]).read().splitlines()[-1])
print("hookq/BullMQ: processing %.2fx (%.0f vs %.0f jobs/s), enqueue %.2fx (%.0f vs %.0f jobs/s)" % (
    h["drain_jobs_per_s"] / b["drain_jobs_per_s"], h["drain_jobs_per_s"], b["drain_jobs_per_s"],
    h["enqueue_jobs_per_s"] / b["enqueue_jobs_per_s"], h["enqueue_jobs_per_s"], b["enqueue_jobs_per_s"]))
PY
