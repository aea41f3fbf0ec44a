"""When a request is tried again, and how long the client waits first.

A request is *replayable* when sending it twice does what sending it once does: a read
(GET, `check`), a PUT or DELETE (they set a state), a reservation's release (a second one
changes nothing), or a POST that carries an idempotency key (the server answers the first
result again for the same key and body). The client gives
consume, batch consumes, reservations and grants a key of its own when the caller gives none,
and sends that same key on every retry.

The rules, in order (`RetryPolicy.delay`):

1. The connection failed before the request went out (refused, DNS, connect timeout, no
   free connection in the pool): tried again, whatever the request.
2. The request went out and no answer came back (read timeout, connection reset): tried
   again only if replayable. Otherwise `APIConnectionError`: it may or may not have run.
3. 429 `rate_limited`: tried again after `Retry-After` (nothing ran). A wait longer than
   `max_retry_after` is not waited out: `RateLimited` at once.
4. 502, 503, 504: tried again if replayable, after `Retry-After` when the answer gives one.
5. 500 (and any other 5xx): tried again only if the request carries an idempotency key:
   the server may have run it, and only the same key makes the retry safe.
6. Anything else (4xx): never; the answer is the answer.

The wait before retry n (0-based) is `min(max_delay, base_delay * 2**n)`, half of it fixed
and half random ("equal jitter": clients that failed together do not retry together), or
the server's `Retry-After` when longer. At most `max_retries` retries.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from .errors import parse_retry_after

REPLAYABLE_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE"})
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
GATEWAY = frozenset({502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def backoff(self, retry: int) -> float:
        ceiling = min(self.max_delay, self.base_delay * 2.0**retry)
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def delay(
        self,
        *,
        retry: int,
        replayable: bool,
        keyed: bool,
        response: httpx.Response | None = None,
        error: Exception | None = None,
    ) -> float | None:
        """Seconds to wait before retry number `retry` (0-based), or None: do not retry."""
        if retry >= self.max_retries:
            return None
        if response is None:
            if isinstance(error, NOT_SENT) or (replayable and isinstance(error, httpx.HTTPError)):
                return self.backoff(retry)
            return None
        status = response.status_code
        retry_after = parse_retry_after(response.headers.get("retry-after"))
        if status == 429:
            wait = retry_after if retry_after is not None else self.backoff(retry)
            return wait if wait <= self.max_retry_after else None
        if (status in GATEWAY and replayable) or (status >= 500 and keyed):
            wait = max(self.backoff(retry), retry_after or 0.0)
            return wait if wait <= self.max_retry_after else None
        return None


NO_RETRIES = RetryPolicy(max_retries=0)
