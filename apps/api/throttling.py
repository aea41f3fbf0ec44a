import logging
import threading
import time

import redis
from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

WINDOW = 60
logger = logging.getLogger(__name__)
_local = threading.local()


class ApiKeyRateThrottle(BaseThrottle):
    """Per key, fixed one-minute windows counted with one atomic increment per request (a
    sliding history list would cost a read and a write of the whole list every time). On Redis
    the increment and the window's expiry go in one round trip; without Redis (the embedded
    default) the local cache counts per process."""

    def allow_request(self, request, view):
        api_key = request.auth
        if api_key is None:
            return True
        limit = api_key.rate_limit_per_minute
        if limit is None:
            limit = settings.API_RATE_LIMIT
        now = time.time()
        key = f"creditdesk:rate:{api_key.prefix}:{int(now // WINDOW)}"
        try:
            count = _count_redis(key) if settings.REDIS_URL else _count_local(key)
        except redis.RedisError:
            # Counting is a guard, not the product: with Redis down, serve and say so.
            logger.warning("Rate limit not counted: Redis unavailable", exc_info=True)
            return True
        self.retry_after = WINDOW - (now % WINDOW)
        return count <= limit

    def wait(self):
        return self.retry_after


def _count_redis(key):
    client = getattr(_local, "client", None)
    if client is None:
        client = _local.client = redis.Redis.from_url(
            settings.REDIS_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
    pipe = client.pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, 2 * WINDOW, nx=True)
    return pipe.execute()[0]


def _count_local(key):
    try:
        return cache.incr(key)
    except ValueError:  # the window's first request
        return 1 if cache.add(key, 1, timeout=2 * WINDOW) else cache.incr(key)
