"""AsyncCreditDesk: the same operations awaited, its iterators async, its hold an `async
with` — against the same live server."""

import creditdesk
import pytest

pytestmark = [
    pytest.mark.postgres,  # the live server needs a database its threads share
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.anyio,
]


async def test_the_async_client_consumes_reserves_and_pages(async_cd, acme):
    async with async_cd as cd:
        used = await cd.consume(account="acme", feature="api_call", quantity=2)
        assert used["balance_after"] == "98.000000"
        async with cd.reserve("acme", "api_call", 10) as hold:
            await hold.commit(3)
        with pytest.raises(RuntimeError):
            async with cd.reserve("acme", "api_call", 10) as dropped:
                raise RuntimeError("the work failed")
        assert (await cd.get_reservation(dropped.id))["status"] == "released"
        results = await cd.consume_batch([{"account": "acme", "feature": "api_call"}] * 4)
        assert [r["status"] for r in results] == [201] * 4
        entries = [entry async for entry in cd.ledger(account="acme", page_size=2)]
        assert [e["kind"] for e in entries].count("consume") == 6
        events = [event async for event in cd.usage(account="acme", page_size=5)]
        assert len(events) == 6
        [wallet] = (await cd.balance(account="acme"))["wallets"]
        assert (wallet["balance"], wallet["held"]) == ("91.000000", "0.000000")
        with pytest.raises(creditdesk.InsufficientCredits):
            await cd.consume(account="acme", feature="api_call", quantity=1000)


async def test_a_hold_whose_block_is_cancelled_is_still_released(async_cd, acme):
    import anyio

    async with async_cd as cd:
        with anyio.move_on_after(0.5):
            async with cd.reserve("acme", "api_call", 25) as hold:
                await anyio.sleep(30)  # cancelled here: the release is shielded
        assert (await cd.get_reservation(hold.id))["status"] == "released"
        [wallet] = (await cd.balance(account="acme"))["wallets"]
        assert wallet["held"] == "0.000000"
