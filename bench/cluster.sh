#!/bin/sh
# bench/cluster.sh: issue 9's benchmark. The queue (bench_queue: enqueue and
# drain) and the intake (wrk against `hookq serve`) against one redis-server
# and against a 3-master Redis Cluster on the same machine, with shards = 12,
# both up side by side and measured in turn, HQ_BENCH_ROUNDS times (3):
# medians of jobs/s, req/s, Redis CPU per job on each node (INFO cpu before
# and after; how much of it in scripts, from INFO commandstats), Redis calls
# per job, hookq's own CPU per job; the cluster's sum against the single
# server's (target: within 15 %), each node's share (target: a third
# +-25 %), and the Redis-bound ceiling of one server and of N masters on N
# cores. Usage: bench/cluster.sh [BUILD] (env JOBS, HQ_BENCH_DURATION,
# HQ_BENCH_ROUNDS, HQ_BENCH_PARTS=queue,intake,intake-rate,intake-bound,controls,
# HQ_BENCH_RATE=4000, HQ_BENCH_CONNS=64: wrk's connections).
# intake-rate: the intake at a fixed rate that leaves the cores idle part of
# the time, so that the Redis CPU per request is the work, not the time three
# redis-servers lose taking turns on two cores. controls: what the cluster's
# excess is made of: the intake on one server alone, on one server beside two
# other busy redis-servers (no cluster), on a one-node cluster holding every
# slot (cluster mode, one process), and on the 3-master cluster.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3   # Debian's, with python3-redis
exec "$py" "$here/cluster.py" "${1:-build-release}"
