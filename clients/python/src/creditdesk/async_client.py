"""`AsyncCreditDesk`: `CreditDesk` (client.py) with every method awaited, the iterators
async (`async for entry in cd.ledger(...)`) and `async with cd.reserve(...)`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from types import TracebackType
from typing import Any, cast

import anyio
import httpx

from . import _calls as calls
from ._http import (
    DEFAULT_TIMEOUT,
    Attempts,
    add_results,
    answer,
    headers,
    held,
    interrupted,
    request_args,
    settings,
)
from .errors import CreditDeskError, ReservationNotHeld
from .retries import RetryPolicy
from .types import (
    Account,
    Balance,
    BatchResult,
    BillingLink,
    Check,
    CheckoutSession,
    Commit,
    Consume,
    Entitlements,
    Grant,
    LedgerEntry,
    Quantity,
    Reservation,
    UsageEvent,
    UsageTotal,
    WebhookEndpoint,
    WebhookEndpointWithSecret,
)

JSON = dict[str, Any]
RELEASE_WAIT = 10.0  # seconds a cancelled block's release may take


class AsyncCreditDesk:
    """An asyncio (or trio) client of one CreditDesk server with one API key.

    `api_key` and `base_url` default to CREDITDESK_API_KEY and CREDITDESK_BASE_URL.
    `retries` sets what is tried again (creditdesk.retries); `transport` is httpx's, for
    tests and proxies. Close it (or use it in a `with`) to free its connections.
    """

    def __init__(
        self,
        api_key: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        retries: RetryPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        key, url = settings(api_key, base_url)
        self.base_url = url
        self.retries = retries or RetryPolicy()
        self._http = httpx.AsyncClient(
            base_url=url, headers=headers(key), timeout=timeout, transport=transport
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncCreditDesk:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _send(self, call: calls.Call) -> Any:
        attempts = Attempts(call, self.retries)
        while True:
            try:
                response = await self._http.request(call.method, call.path, **request_args(call))
            except httpx.TransportError as error:
                wait = attempts.after_error(error)
            else:
                if response.is_success:
                    return answer(response)
                if attempts.done_before(response):
                    return None
                wait = attempts.after_answer(response)
            await anyio.sleep(wait)

    async def _pages(self, call: calls.Call, key: str) -> AsyncIterator[Any]:
        while True:
            page = await self._send(call)
            for item in page[key]:
                yield item
            if not page.get("next"):
                return
            call = calls.next_page(call, page["next"])

    # Accounts

    async def get_account(self, *, account: str) -> Account:
        return cast(Account, await self._send(calls.get_account(account)))

    async def put_account(
        self,
        *,
        account: str,
        name: str | None = None,
        email: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        plan: str | None = None,
    ) -> Account:
        """Create the account or update the fields given."""
        call = calls.put_account(account, name=name, email=email, metadata=metadata, plan=plan)
        return cast(Account, await self._send(call))

    async def balance(self, *, account: str, at: datetime | str | None = None) -> Balance:
        """Per credit type, now or as it stood at `at`."""
        return cast(Balance, await self._send(calls.balance(account, at=at)))

    async def entitlements(self, *, account: str) -> Entitlements:
        return cast(Entitlements, await self._send(calls.entitlements(account)))

    # Usage

    async def check(self, *, account: str, feature: str, quantity: Quantity | None = None) -> Check:
        """Whether a consume would succeed now; writes nothing."""
        call = calls.check(account=account, feature=feature, quantity=quantity)
        return cast(Check, await self._send(call))

    async def consume(
        self,
        *,
        account: str,
        feature: str,
        quantity: Quantity | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        occurred_at: datetime | str | None = None,
    ) -> Consume:
        """Charge a use, all or nothing. Without `idempotency_key` the client makes one and
        sends it with every retry of this call, so a retry never charges twice."""
        call = calls.consume(
            account=account,
            feature=feature,
            quantity=quantity,
            idempotency_key=idempotency_key,
            metadata=metadata,
            occurred_at=occurred_at,
        )
        return cast(Consume, await self._send(call))

    async def consume_batch(self, events: Iterable[Mapping[str, Any]]) -> list[BatchResult]:
        """Consume many events (each a dict of consume's keyword arguments), 1,000 to a
        request; each stands alone. The results in the order given, `index` into `events`.
        A request that fails raises BatchInterrupted with what was answered and the rest."""
        results: list[BatchResult] = []
        batches = calls.consume_batches(events)
        for number, call in enumerate(batches):
            try:
                answered = (await self._send(call))["results"]
            except CreditDeskError as error:
                raise interrupted(error, results, batches[number:]) from error
            add_results(cast(list[Any], results), answered)
        return results

    # Reservations

    async def create_reservation(
        self,
        *,
        account: str,
        feature: str,
        quantity: Quantity,
        ttl_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> Reservation:
        call = calls.create_reservation(
            account=account,
            feature=feature,
            quantity=quantity,
            ttl_seconds=ttl_seconds,
            idempotency_key=idempotency_key,
        )
        return cast(Reservation, await self._send(call))

    async def get_reservation(self, reservation_id: int) -> Reservation:
        return cast(Reservation, await self._send(calls.get_reservation(reservation_id)))

    async def commit_reservation(
        self,
        reservation_id: int,
        *,
        quantity: Quantity,
        metadata: Mapping[str, Any] | None = None,
    ) -> Commit:
        call = calls.commit_reservation(reservation_id, quantity=quantity, metadata=metadata)
        return cast(Commit, await self._send(call))

    async def release_reservation(self, reservation_id: int) -> Reservation:
        return cast(Reservation, await self._send(calls.release_reservation(reservation_id)))

    @asynccontextmanager
    async def reserve(
        self,
        account: str,
        feature: str,
        quantity: Quantity,
        *,
        ttl_seconds: int | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncIterator[AsyncHold]:
        """Hold credits for the block; `hold.commit(actual)` charges what was used. Released
        when the block raises or ends without a commit."""
        reservation = held(
            await self.create_reservation(
                account=account,
                feature=feature,
                quantity=quantity,
                ttl_seconds=ttl_seconds,
                idempotency_key=idempotency_key,
            )
        )
        hold = AsyncHold(self, reservation)
        try:
            yield hold
        except BaseException:
            if hold.open:
                with suppress(CreditDeskError):  # the block's error is the one to see; the
                    await hold.release()  # hold expires at its ttl if this release fails too
            raise
        if hold.open:
            await hold.release()

    # Grants

    async def grant(
        self,
        *,
        account: str,
        amount: Quantity,
        source: str,
        reason: str,
        credit_type: str | None = None,
        expires_at: datetime | str | None = None,
        priority: int | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:
        """Grant credits (a service key with grants:write); keyed like consume."""
        call = calls.grant(
            account=account,
            amount=amount,
            source=source,
            reason=reason,
            credit_type=credit_type,
            expires_at=expires_at,
            priority=priority,
            idempotency_key=idempotency_key,
        )
        return cast(Grant, await self._send(call))

    # History

    def ledger(
        self,
        *,
        account: str,
        credit_type: str | None = None,
        kind: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[LedgerEntry]:
        """Every ledger entry, newest first, fetching page after page as it is read."""
        params = calls.query(
            credit_type=credit_type, kind=kind, since=since, until=until, limit=page_size
        )
        return cast(
            AsyncIterator[LedgerEntry], self._pages(calls.ledger_page(account, params), "results")
        )

    def usage(
        self,
        *,
        account: str,
        feature: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        page_size: int | None = None,
    ) -> AsyncIterator[UsageEvent]:
        """Every usage event, newest first, page after page."""
        params = calls.query(feature=feature, since=since, until=until, limit=page_size)
        return cast(
            AsyncIterator[UsageEvent], self._pages(calls.usage_page(account, params), "events")
        )

    async def usage_totals(
        self,
        *,
        account: str,
        group_by: str,
        feature: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> list[UsageTotal]:
        """Quantity and credits per `day` or per `feature`."""
        params = calls.query(group_by=group_by, feature=feature, since=since, until=until)
        return cast(
            list[UsageTotal], (await self._send(calls.usage_page(account, params)))["totals"]
        )

    # Catalog and billing

    async def plans(self) -> list[JSON]:
        return cast(list[JSON], await self._send(calls.catalog("plans")))

    async def credit_packs(self) -> list[JSON]:
        return cast(list[JSON], await self._send(calls.catalog("credit-packs")))

    async def features(self) -> list[JSON]:
        return cast(list[JSON], await self._send(calls.catalog("features")))

    async def checkout(
        self,
        *,
        account: str,
        success_url: str,
        cancel_url: str,
        plan: str | None = None,
        credit_pack: str | None = None,
    ) -> CheckoutSession:
        """A Stripe Checkout for a plan or a credit pack: send the customer to its URL."""
        call = calls.checkout(
            account,
            success_url=success_url,
            cancel_url=cancel_url,
            plan=plan,
            credit_pack=credit_pack,
        )
        return cast(CheckoutSession, await self._send(call))

    async def billing_link(self, *, account: str) -> BillingLink:
        return cast(BillingLink, await self._send(calls.billing_link(account)))

    # Contracts

    async def get_contract(self, *, account: str) -> JSON:
        return cast(JSON, await self._send(calls.get_contract(account)))

    async def put_contract(self, *, account: str, **terms: Any) -> JSON:
        """Set the account's contract (the fields of docs/contracts.md), replacing it."""
        return cast(JSON, await self._send(calls.put_contract(account, terms)))

    async def delete_contract(self, *, account: str, reason: str | None = None) -> None:
        await self._send(calls.delete_contract(account, reason=reason))

    # Webhook endpoints

    async def webhook_endpoints(self) -> list[WebhookEndpoint]:
        return cast(list[WebhookEndpoint], (await self._send(calls.webhook_endpoints()))["results"])

    async def create_webhook_endpoint(
        self,
        *,
        url: str,
        account: str | None = None,
        event_types: Iterable[str] | None = None,
        description: str | None = None,
    ) -> WebhookEndpointWithSecret:
        """Register an endpoint; the answer's `secret` is shown this once."""
        call = calls.create_webhook_endpoint(
            url=url, account=account, event_types=event_types, description=description
        )
        return cast(WebhookEndpointWithSecret, await self._send(call))

    async def get_webhook_endpoint(self, endpoint_id: int) -> WebhookEndpoint:
        return cast(WebhookEndpoint, await self._send(calls.webhook_endpoint(endpoint_id)))

    async def delete_webhook_endpoint(self, endpoint_id: int) -> None:
        await self._send(calls.webhook_endpoint(endpoint_id, method="DELETE"))

    async def rotate_webhook_secret(
        self, endpoint_id: int, *, overlap_hours: int | None = None
    ) -> WebhookEndpointWithSecret:
        """A new secret; the old one still signs for `overlap_hours` (the server's default: 24)."""
        call = calls.rotate_webhook_secret(endpoint_id, overlap_hours=overlap_hours)
        return cast(WebhookEndpointWithSecret, await self._send(call))


class AsyncHold:
    """A reservation held for an `async with cd.reserve(...)` block."""

    def __init__(self, client: AsyncCreditDesk, reservation: Reservation) -> None:
        self._client = client
        self.reservation = reservation
        self.committed: Commit | None = None
        self.released = False

    @property
    def id(self) -> int:
        return self.reservation["id"]

    @property
    def open(self) -> bool:
        """Neither committed nor released yet."""
        return self.committed is None and not self.released

    async def commit(
        self, quantity: Quantity, *, metadata: Mapping[str, Any] | None = None
    ) -> Commit:
        """Charge the actual use (up to what is held, or more if the balance allows)."""
        self.committed = await self._client.commit_reservation(
            self.id, quantity=quantity, metadata=metadata
        )
        self.reservation = self.committed["reservation"]
        return self.committed

    async def release(self) -> None:
        """Give the held credits back now (a hold that expired or was released already is
        fine: there is nothing left to give back). Shielded from cancellation, so a request
        cancelled mid-block still gives its hold back; waits at most RELEASE_WAIT seconds."""
        with anyio.move_on_after(RELEASE_WAIT, shield=True):
            with suppress(ReservationNotHeld):
                self.reservation = await self._client.release_reservation(self.id)
            self.released = True
