"""The async client is the sync one awaited: the same methods, with the same arguments."""

import inspect

from creditdesk import AsyncCreditDesk, CreditDesk


def test_the_async_client_has_every_method_of_the_sync_one_with_the_same_arguments():
    def surface(cls):
        return {
            name: [
                (p.name, p.kind, p.default) for p in inspect.signature(member).parameters.values()
            ]
            for name, member in vars(cls).items()
            if callable(member) and not name.startswith("_") and name not in ("close", "aclose")
        }

    sync, concurrent = surface(CreditDesk), surface(AsyncCreditDesk)
    assert sync == concurrent and len(sync) == 29
    iterators = {"ledger", "usage"}  # async iterators; every other method a coroutine
    for name in set(sync) - iterators - {"reserve"}:
        assert inspect.iscoroutinefunction(getattr(AsyncCreditDesk, name)), name
