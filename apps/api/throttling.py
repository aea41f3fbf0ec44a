import logging
import os
import threading
import time
from typing import NamedTuple

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

WINDOW = 60
COUNTED = "creditdesk.rate_counted"  # WSGI environ key
logger = logging.getLogger(__name__)
_local = threading.local()
REDIS_RETRY = 2  # seconds without counting after Redis failed
_redis_down_until = [0.0]  # per process, shared by its threads
_redis_down_lock = threading.Lock()


class ApiKeyRateThrottle(BaseThrottle):
    """Per key, fixed one-minute windows counted with one atomic increment per request (a
    sliding history list would cost a read and a write of the whole list every time). On Redis
    that is one command; without Redis (the embedded default) the local cache counts per
    process."""

    def allow_request(self, request, view):
        api_key = request.auth
        if api_key is None:
            return True
        # The fast lane (fast_lane.py) counts the requests it hands on to Django: count once.
        counted = request.META.get(COUNTED) or count_request(api_key.secret_hash)
        self.retry_after = counted.retry_after
        limit = api_key.rate_limit_per_minute
        # The same rule as the API's database functions (apps/usage/sql/api_caller.sql).
        return counted.number <= (settings.API_RATE_LIMIT if limit is None else limit)

    def wait(self):
        return self.retry_after


class Counted(NamedTuple):
    number: int  # this request's number in the window
    retry_after: float  # seconds until the window ends
    window: str  # the counter's name


def count_request(key_hash):
    """Count one request of the key whose SHA-256 is `key_hash`. The fast lane counts before
    it knows the key is valid (it authenticates and consumes in one database call): counted by
    the whole key's hash, not its visible prefix, a request with a forged secret counts against
    nobody's window."""
    now = time.time()
    key = f"creditdesk:rate:{key_hash}:{int(now // WINDOW)}"
    if not settings.REDIS_URL:
        return Counted(_count_local(key), WINDOW - (now % WINDOW), key)
    count = 0  # counting is a guard, not the product: with Redis down, serve uncounted
    if time.monotonic() >= _redis_down_until[0]:
        try:
            count = _count_redis(key)
        except redis.RedisError as error:
            # Not tried again for a while: a Redis that hangs would otherwise cost every
            # request its socket timeout, and every request a line in the log. Threads that
            # tried at once all fail: the first to record the pause says so, once.
            with _redis_down_lock:
                first = time.monotonic() >= _redis_down_until[0]
                _redis_down_until[0] = time.monotonic() + REDIS_RETRY
            if first:
                logger.warning("Rate limits not counted for %d s: Redis unavailable (%s)",
                               REDIS_RETRY, error)  # fmt: skip
    return Counted(count, WINDOW - (now % WINDOW), key)


def uncount_request(counted):
    """Take back a request the fast lane counted that Django REST framework would not have
    (the key unknown or without the scope): it counts only once the key and scope pass."""
    if counted.number == 0 or time.monotonic() < _redis_down_until[0]:
        return  # never counted (Redis was down), or Redis is not to be tried now
    try:
        if settings.REDIS_URL:
            _command("DECR", counted.window)
        else:
            cache.decr(counted.window)
    except (redis.RedisError, ValueError):  # not counted (Redis down), or the window expired
        pass


def _redis():
    """This thread's own connection to Redis, without a pool: redis-py's client checks a
    connection out of its pool, wraps the command in its retry policy and checks it back in,
    four times the CPU of the command itself (bench/RESULTS.md). A failed command
    disconnects it; the next one connects again."""
    client = getattr(_local, "client", None)
    if client is None:
        pool = redis.ConnectionPool.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        client = _local.client = pool.connection_class(**pool.connection_kwargs)
    return client


# A socket is not shared across a fork: the child's one thread (the forking one) starts
# without its parent's connection. (Set here once, not checked with a getpid() per request.)
os.register_at_fork(after_in_child=lambda: _local.__dict__.pop("client", None))


def _command(*args):
    client = _redis()
    try:
        client.send_command(*args)
        return client.read_response()
    except redis.ConnectionError:
        # A connection Redis closed while it was idle (a restart, its idle timeout): once
        # more on a new one, as redis-py's client retries. (A timeout is not retried.)
        client.disconnect()
        client.send_command(*args)
        return client.read_response()


def _count_redis(key):
    count = _command("INCR", key)
    if count == 1:
        # The window's first request sets its expiry. Were that lost, the key would only
        # linger: the next window has another name.
        _command("EXPIRE", key, 2 * WINDOW)
    return count


def _count_local(key):
    try:
        return cache.incr(key)
    except ValueError:  # the window's first request
        return 1 if cache.add(key, 1, timeout=2 * WINDOW) else cache.incr(key)
