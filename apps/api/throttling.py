import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import BaseThrottle

WINDOW = 60


class ApiKeyRateThrottle(BaseThrottle):
    """Per key, fixed one-minute windows counted with one atomic increment per request (a
    sliding history list would cost a read and a write of the whole list every time)."""

    def allow_request(self, request, view):
        api_key = request.auth
        if api_key is None:
            return True
        limit = api_key.rate_limit_per_minute or settings.API_RATE_LIMIT
        now = time.time()
        key = f"rate:{api_key.prefix}:{int(now // WINDOW)}"
        try:
            count = cache.incr(key)
        except ValueError:  # the window's first request
            count = 1 if cache.add(key, 1, timeout=2 * WINDOW) else cache.incr(key)
        self.retry_after = WINDOW - (now % WINDOW)
        return count <= limit

    def wait(self):
        return self.retry_after
