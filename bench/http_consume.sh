#!/bin/bash
# HTTP benchmark of the consume API (issue 5), next to the raw-SQL yardstick in the same run.
#   bench/http_consume.sh [SECONDS=15] [CONNECTIONS=16]      (WORKERS=8 THREADS=2 by default)
# gunicorn with production settings on PostgreSQL; load from wrk (installed if absent);
# shapes: consume on 10,000 accounts, consume on one hot account, check, batch of 500; then
# bench/wsgi_floor.py (the same statements with no framework) under the same gunicorn shape,
# and the yardstick.
set -eu
cd "$(dirname "$0")/.."
T=${1:-15} C=${2:-16}
PORT=${BENCH_PORT:-8123}
DB=creditdesk_http_$$
command -v wrk >/dev/null || apt-get install -y -q wrk >/dev/null
KEY=$(.venv/bin/python bench/http_setup.py create "$DB" | tail -1)
export KEY
cleanup() {
  [ -n "${GUNICORN:-}" ] && kill "$GUNICORN" 2>/dev/null && wait "$GUNICORN" 2>/dev/null || true
  .venv/bin/python bench/http_setup.py drop "$DB"
}
trap cleanup EXIT
DJANGO_SETTINGS_MODULE=config.settings.production SECRET_KEY=bench-only-not-secret \
  ALLOWED_HOSTS=127.0.0.1 SECURE_SSL_REDIRECT=false \
  DATABASE_URL="postgres://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379/13 \
  .venv/bin/gunicorn config.wsgi -b "127.0.0.1:$PORT" -k gthread \
    --workers "${WORKERS:-8}" --threads "${THREADS:-2}" --log-level warning &
GUNICORN=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.2; done

run() {  # name, then env for the lua script; prints "name rps p99"
  local name=$1; shift
  out=$(env "$@" wrk -t2 -c"$C" -d"${T}s" --latency -s "${LUA:-bench/wrk/consume.lua}" \
        "http://127.0.0.1:$PORT")
  rps=$(echo "$out" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p')
  p99=$(echo "$out" | sed -n 's/^ *99% *\(.*\)$/\1/p')
  non2xx=$(echo "$out" | sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p')
  echo "$name: ${rps%.*} req/s, p99 $p99, non-2xx ${non2xx:-0}"
}
run "consume, 10000 accounts" ACCOUNTS=10000
run "consume, one hot account" ACCOUNTS=1
run "check, 10000 accounts" ACCOUNTS=10000 ENDPOINT=/api/v1/check
LUA=bench/wrk/batch.lua run "batch of 500 (x500 = events/s)"
kill "$GUNICORN"; wait "$GUNICORN" 2>/dev/null || true; GUNICORN=
FLOOR_DSN="postgresql://postgres@127.0.0.1:5432/$DB" REDIS_URL=redis://127.0.0.1:6379/13 \
  .venv/bin/gunicorn wsgi_floor -b "127.0.0.1:$PORT" --chdir bench -k gthread \
    --workers "${WORKERS:-8}" --threads "${THREADS:-2}" --log-level warning &
GUNICORN=$!
for _ in $(seq 50); do (: >"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.2; done
run "floor: bare WSGI, same statements" ACCOUNTS=10000
kill "$GUNICORN"; wait "$GUNICORN" 2>/dev/null || true; GUNICORN=
bench/yardstick.sh "$C" "$T" 10000
bench/yardstick.sh "$C" "$T" 1
