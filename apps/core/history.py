"""Why a change was made, in the history of every row a block of code saves: services that
save rows of their own (a plan change saves subscriptions it loads and creates) take no
reason, so the caller wraps the call in `change_reason(...)` and each history row written
inside gets it (django-simple-history's `history_change_reason`, 100 characters), with the
user the service records."""

from contextlib import contextmanager
from contextvars import ContextVar

from simple_history.signals import pre_create_historical_record

REASON_MAX_LENGTH = 100  # simple_history's history_change_reason column

_reason = ContextVar("history_change_reason", default="")


@contextmanager
def change_reason(reason):
    token = _reason.set((reason or "").strip()[:REASON_MAX_LENGTH])
    try:
        yield
    finally:
        _reason.reset(token)


def _add_reason(sender, history_instance, **kwargs):
    reason = _reason.get()
    if reason and not history_instance.history_change_reason:
        history_instance.history_change_reason = reason


pre_create_historical_record.connect(_add_reason, dispatch_uid="apps.core.history.change_reason")
