"""Logging pieces referenced by the LOGGING setting: one JSON object a line in production
(LOG_FORMAT), each line logged while a request is served carrying that request's id."""

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

# The id of the request being served (apps/core/middleware.py, apps/api/fast_lane.py); "" when
# none is: a job, a command, a worker's task.
REQUEST_ID = ContextVar("request_id", default="")


def forget_request_id(**kwargs):
    """request_finished's receiver: what this thread logs next is no longer that request's."""
    REQUEST_ID.set("")


class RequestIdFilter(logging.Filter):
    """Stamps every record with the request id (`record.request_id`), for the formatters."""

    def filter(self, record):
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: a log shipper needs no multi-line rules, and a traceback is one
    field (`exception`), never lines of its own."""

    def format(self, record):
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "") or REQUEST_ID.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class WithoutTraceback(logging.Filter):
    """For records of the caller's mistakes (a refused Host header): one line each. Anyone may
    send them, unauthenticated, so a traceback per request would flood the log."""

    def filter(self, record):
        record.exc_info = None
        record.exc_text = None
        return True
