"""Checking that a webhook delivery came from CreditDesk (docs/webhooks.md)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from .errors import CreditDeskError

SIGNATURE_HEADER = "CreditDesk-Signature"
TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
SIGNATURE = re.compile(r"[0-9a-f]{64}", re.ASCII)  # hex HMAC-SHA256
DEFAULT_TOLERANCE = 300  # seconds a delivery's timestamp may be off: older is a replay


class InvalidSignature(CreditDeskError):
    """The delivery is not signed with the secret, or its timestamp is too old."""


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str,
    *,
    tolerance: int = DEFAULT_TOLERANCE,
    now: float | None = None,
) -> dict[str, Any]:
    """The event of a delivery, once its signature holds: `body` is the raw request body
    (before any JSON parsing), `headers` the request's (any case). During a secret rotation
    the header carries one `v1` per secret; the delivery is good if one matches `secret`.
    Raises InvalidSignature otherwise (ValueError for an empty `secret`)."""
    if not secret:
        raise ValueError("no webhook secret: every delivery would pass with an empty one")
    raw = body.encode() if isinstance(body, str) else body
    header = _header(headers, SIGNATURE_HEADER)
    if header is None:
        raise InvalidSignature(f"no {SIGNATURE_HEADER} header")
    pairs = [item.strip().split("=", 1) for item in header.split(",") if "=" in item]
    timestamps = [value for name, value in pairs if name == "t"]
    signatures = [value for name, value in pairs if name == "v1" and SIGNATURE.fullmatch(value)]
    if len(timestamps) != 1 or not TIMESTAMP.fullmatch(timestamps[0]) or not signatures:
        raise InvalidSignature(f"a {SIGNATURE_HEADER} header without t= and v1=")
    timestamp = int(timestamps[0])
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        raise InvalidSignature("the delivery's timestamp is outside the tolerance (a replay?)")
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + raw, hashlib.sha256)
    wanted = expected.hexdigest().encode()
    if not any(hmac.compare_digest(wanted, given.encode()) for given in signatures):
        raise InvalidSignature("no signature matches the secret")
    event: dict[str, Any] = json.loads(raw)
    return event


def _header(headers: Mapping[str, str], name: str) -> str | None:
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() in (wanted, "http_" + wanted.replace("-", "_")):  # Django's META too
            return value
    return None
