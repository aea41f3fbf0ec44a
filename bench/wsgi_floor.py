"""A bare WSGI app that answers `POST /api/v1/consume` with the statements the fast lane runs
(key and account in one query, the consume function, one Redis increment) and nothing else:
no validation, no error handling, no framework. bench/http_consume.sh serves it with the same
gunicorn shape to show what this machine allows any Python web process; it is a yardstick,
never a way to run CreditDesk."""

import datetime
import hashlib
import hmac
import json
import os
import threading

import psycopg
import redis

_local = threading.local()
KEY_AND_ACCOUNT = (
    "SELECT k.secret_hash, k.revoked_at, k.scopes, a.id FROM accounts_apikey k "
    "LEFT JOIN accounts_account a ON a.external_id = %s "
    "AND (k.account_id IS NULL OR a.id = k.account_id) WHERE k.prefix = %s"
)
# apps.usage.sql.CONSUME.sql_name, written out: this app runs without Django.
CONSUME = "SELECT * FROM creditdesk_consume_v2(%s, %s, %s, %s, %s, %s::jsonb, %s, %s)"


def application(environ, start_response):
    if getattr(_local, "db", None) is None:
        _local.db = psycopg.connect(os.environ["FLOOR_DSN"], autocommit=True)
        _local.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
    body = json.loads(environ["wsgi.input"].read(int(environ["CONTENT_LENGTH"])))
    raw_key = environ["HTTP_AUTHORIZATION"].split(" ", 1)[1]
    prefix = raw_key.rsplit("_", 1)[0]
    now = datetime.datetime.now(datetime.UTC)
    with _local.db.cursor() as cursor:
        cursor.execute(KEY_AND_ACCOUNT, (body["account"], prefix))
        secret_hash, _, _, account_id = cursor.fetchone()
        hmac.compare_digest(secret_hash, hashlib.sha256(raw_key.encode()).hexdigest())
        _local.redis.incr(f"floor:{prefix}:{int(now.timestamp()) // 60}")
        cursor.execute(CONSUME, (account_id, body["feature"], 1, None, "", "{}", now, now))
        row = cursor.fetchone()
    out = json.dumps({"id": row[1], "credits": str(row[4]), "balance_after": str(row[5])})
    start_response("201 Created", [("Content-Type", "application/json")])
    return [out.encode()]
