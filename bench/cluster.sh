#!/bin/sh
# bench/cluster.sh: issue 9's benchmark. The queue (bench_queue: enqueue and
# drain) and the intake (wrk against `hookq serve`) against one redis-server
# and against a 3-master Redis Cluster on the same machine, with shards = 12:
# jobs/s, req/s, and Redis CPU per job on each node (INFO cpu before and
# after), their sum, and each node's share. Usage: bench/cluster.sh [BUILD]
# (env JOBS, HQ_BENCH_DURATION).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
py=python3; [ -x /usr/bin/python3 ] && py=/usr/bin/python3   # Debian's, with python3-redis
exec "$py" "$here/cluster.py" "${1:-build-release}"
