"""A bare WSGI app that answers `POST /api/v1/consume` with the calls the fast lane makes (one
Redis increment, one call of the API's consume function: key, account and consume) and nothing
else:
no validation, no error handling, no framework. bench/http_consume.sh serves it with the same
gunicorn shape to show what this machine allows any Python web process; it is a yardstick,
never a way to run CreditDesk."""

import datetime
import hashlib
import json
import os
import threading

import psycopg
import redis

_local = threading.local()
# apps.usage.sql.API_CONSUME.sql_name, written out: this app runs without Django.
CONSUME = (
    "SELECT * FROM creditdesk_api_consume_v1(%s, %s, 'usage:write', %s, 1000000000, %s, %s, 1, "
    "NULL, '', '{}'::jsonb, NULL, %s)"
)


def application(environ, start_response):
    if getattr(_local, "db", None) is None:
        _local.db = psycopg.connect(os.environ["FLOOR_DSN"], autocommit=True)
        _local.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
    raw_key = environ["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    prefix = raw_key.rsplit("_", 1)[0]
    now = datetime.datetime.now(datetime.UTC)
    key_hash = hashlib.sha256(raw_key.encode()).hexdigest()
    count = _local.redis.incr(f"floor:{key_hash}:{int(now.timestamp()) // 60}")
    with _local.db.cursor() as cursor:
        cursor.execute(CONSUME, (prefix, key_hash, count, body["account"], body["feature"], now))
        row = cursor.fetchone()
    out = json.dumps({"id": row[4], "credits": str(row[7]), "balance_after": str(row[8])})
    start_response("201 Created", [("Content-Type", "application/json")])
    return [out.encode()]
