#!/bin/sh
# bench/ratelimit.sh: the rate-limit benchmark of issue 4 §7 (bench/ratelimit.py
# does the work). On a private redis-server, with the mock API enforcing 2
# calls per 1 s per (token, endpoint) and 3 worker processes (procworker: the
# job pipeline of hookq work):
#   pairs      200 tokens x 2 endpoints with a backlog on each: calls/s
#              against the theoretical 800/s, the most calls any pair got in
#              any 1 s window, 429s, worker CPU, limiter decisions per call
#   one-token  1,000 jobs of one token over 10 keys on one endpoint (about
#              8.5 min at 2/s): calls/s, the most calls in any 1 s window
#   commands   Redis commands per limiter step
#   shared     (issue 12) an application calling POST /api/limit beside
#              hookq's fetches, 20 tokens: calls/s per (token, endpoint) at
#              the mock API and the most in any 1 s window, next to the
#              fetch-only baseline of the same setup
#   grant      the cost of one /api/limit grant: Redis commands, us
# Usage: bench/ratelimit.sh [BUILD_DIR] [SECTION...]
#   env TOKENS (200), PER_PAIR (16 jobs per pair), ONE_JOBS (1000),
#       SHARED_TOKENS (20), SHARED_JOBS (40), GRANTS (2000)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-${HQ_BUILD:-$here/../build-release}}
[ $# -gt 0 ] && shift
[ -x "$build/hookq" ] || { echo "ratelimit.sh: $build/hookq not built" >&2; exit 1; }
for p in mockapi sink procworker; do
    [ -x "$build/tests/$p" ] || { echo "ratelimit.sh: $build/tests/$p not built" >&2; exit 1; }
done
py=/usr/bin/python3
[ -x "$py" ] || py=python3
echo "== ratelimit: mock API 2/1s per (token, endpoint), 3 worker processes, redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), $(nproc) cores"
exec "$py" "$here/ratelimit.py" "$build" "$@"
