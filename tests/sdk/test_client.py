"""Every method of the synchronous client against a live server: what it sends is what the
API takes, what it returns is what the API answered, and errors arrive as typed exceptions."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import creditdesk
import pytest

from apps.usage.models import UsageEvent
from apps.wallets.models import CreditGrant
from tests.factories import AccountFactory
from tests.ledger import D, assert_ledger_sound, wallet_of

BEFORE_THE_FIRST_GRANT = []

pytestmark = [
    pytest.mark.postgres,  # the live server needs a database its threads share
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_consume_check_balance_and_entitlements(cd, acme):
    assert cd.check(account="acme", feature="api_call", quantity=5)["allowed"] is True
    used = cd.consume(account="acme", feature="api_call", quantity=Decimal("2.5"),
                      metadata={"request": "r1"})  # fmt: skip
    assert (used["credits"], used["balance_after"]) == ("2.500000", "97.500000")
    [wallet] = cd.balance(account="acme")["wallets"]
    assert (wallet["credit_type"], wallet["available"]) == ("credits", "97.500000")
    before = cd.balance(account="acme", at=datetime.now(UTC) - timedelta(days=1))
    assert [w["balance"] for w in before["wallets"]] == BEFORE_THE_FIRST_GRANT
    [feature] = cd.entitlements(account="acme")["features"]
    assert (feature["feature"], feature["enabled"], feature["source"]) == (
        "api_call", True, "feature",
    )  # fmt: skip
    assert wallet_of(acme).balance == D("97.5")


def test_consume_makes_a_key_of_its_own_and_honours_the_callers(cd, acme):
    first = cd.consume(account="acme", feature="api_call", idempotency_key="job-7")
    again = cd.consume(account="acme", feature="api_call", idempotency_key="job-7")
    assert again["id"] == first["id"]  # the same key: charged once
    other = cd.consume(account="acme", feature="api_call")
    keys = set(UsageEvent.objects.values_list("idempotency_key", flat=True))
    assert other["id"] != first["id"] and len(keys) == 2 and "job-7" in keys
    assert wallet_of(acme).balance == D(98)


def test_refusals_are_typed_exceptions_with_the_apis_details(cd, acme):
    with pytest.raises(creditdesk.InsufficientCredits) as refused:
        cd.consume(account="acme", feature="api_call", quantity=101)
    error = refused.value
    assert (error.status, error.code) == (402, "insufficient_credits")
    assert error.details == {"credit_type": "credits", "credits_required": "101",
                             "available": "100"}  # fmt: skip
    assert isinstance(error, creditdesk.PaymentRequired)
    with pytest.raises(creditdesk.AccountNotFound) as missing:
        cd.balance(account="nobody")
    assert isinstance(missing.value, creditdesk.NotFound) and missing.value.status == 404
    with pytest.raises(creditdesk.FeatureNotFound):
        cd.consume(account="acme", feature="no_such_feature")
    with pytest.raises(creditdesk.ValidationError) as invalid:
        cd.consume(account="acme", feature="api_call", quantity="1.0000001")
    assert "quantity" in invalid.value.details
    with pytest.raises(TypeError, match="float"):
        cd.consume(account="acme", feature="api_call", quantity=1.5)  # type: ignore[arg-type]
    assert wallet_of(acme).balance == D(100)


def test_a_wrong_key_is_an_authentication_error(server, acme):
    stranger = creditdesk.CreditDesk("cd_nope_nope", base_url=server)
    with stranger, pytest.raises(creditdesk.AuthenticationError) as refused:
        stranger.balance(account="acme")
    assert refused.value.status == 401


def test_a_batch_is_chunked_by_a_thousand_and_merged_in_order(cd, acme):
    events = [{"account": "acme", "feature": "api_call", "quantity": "0.01"}] * 1500
    events[1200] = {"account": "acme", "feature": "api_call", "quantity": 1000}  # too much
    results = cd.consume_batch(events)
    assert [r["index"] for r in results] == list(range(1500))
    assert [r["status"] for r in results].count(201) == 1499
    assert results[1200]["error"]["code"] == "insufficient_credits"
    assert UsageEvent.objects.count() == 1499
    assert wallet_of(acme).balance == D(100) - D("14.99")
    assert_ledger_sound(acme)


def test_a_reservation_is_committed_for_what_was_used(cd, acme):
    with cd.reserve("acme", "api_call", 10) as hold:
        assert cd.get_reservation(hold.id)["status"] == "held"
        assert cd.balance(account="acme")["wallets"][0]["available"] == "90.000000"
        committed = hold.commit(4)
    assert committed["usage_event"]["credits"] == "4.000000"
    assert cd.get_reservation(hold.id)["status"] == "committed"
    assert wallet_of(acme).balance == D(96) and wallet_of(acme).held == D(0)


def test_a_reservation_is_released_when_the_block_raises_or_never_commits(cd, acme):
    with (
        pytest.raises(RuntimeError, match="render failed"),
        cd.reserve("acme", "api_call", 30) as failed,
    ):
        raise RuntimeError("render failed")
    assert cd.get_reservation(failed.id)["status"] == "released"
    with cd.reserve("acme", "api_call", 30) as forgotten:
        pass
    assert cd.get_reservation(forgotten.id)["status"] == "released"
    with cd.reserve("acme", "api_call", 30) as released:
        released.release()  # released by hand: the block's end leaves it be
    assert forgotten.released and released.released
    assert wallet_of(acme).balance == D(100) and wallet_of(acme).held == D(0)
    with pytest.raises(creditdesk.InsufficientCredits), cd.reserve("acme", "api_call", 500):
        pytest.fail("the block runs only when the credits are held")
    reservation = cd.create_reservation(account="acme", feature="api_call", quantity=1)
    cd.release_reservation(reservation["id"])
    with pytest.raises(creditdesk.ReservationNotHeld):
        cd.commit_reservation(reservation["id"], quantity=1)


def test_grants_ledger_and_usage_follow_their_cursors(cd, acme):
    grant = cd.grant(account="acme", amount="50", source="promo", reason="welcome back",
                     expires_at=datetime.now(UTC) + timedelta(days=30))  # fmt: skip
    assert (grant["amount"], grant["source"]) == ("50.000000", "promo")
    replay = cd.grant(account="acme", amount="50", source="promo", reason="welcome back",
                      idempotency_key="promo-1")  # fmt: skip
    assert cd.grant(account="acme", amount="50", source="promo", reason="welcome back",
                    idempotency_key="promo-1")["id"] == replay["id"]  # fmt: skip
    for n in range(7):
        cd.consume(account="acme", feature="api_call", metadata={"n": n})
    entries = list(cd.ledger(account="acme", page_size=3))
    assert len(entries) == 3 + 7  # the first grant, two grants, seven consumes
    assert [e["kind"] for e in entries[:7]] == ["consume"] * 7  # newest first
    assert len({e["id"] for e in entries}) == len(entries)
    events = list(cd.usage(account="acme", page_size=2))
    assert [e["metadata"]["n"] for e in events] == [6, 5, 4, 3, 2, 1, 0]
    [total] = cd.usage_totals(account="acme", group_by="feature")
    assert (total["group"], total["quantity"]) == ("api_call", "7.000000")
    consumes = list(cd.ledger(account="acme", kind="consume", page_size=500))
    assert len(consumes) == 7
    assert CreditGrant.objects.filter(account=acme).count() == 3


def test_accounts_catalog_and_billing_link(cd, acme, offline_stripe):
    created = cd.put_account(account="globex", name="Globex", email="ap@globex.example",
                             metadata={"tier": "gold"})  # fmt: skip
    assert (created["external_id"], created["metadata"]) == ("globex", {"tier": "gold"})
    assert cd.put_account(account="globex", metadata={})["metadata"] == {}  # cleared
    assert cd.put_account(account="globex", name="Globex Corp")["name"] == "Globex Corp"
    assert cd.get_account(account="globex")["email"] == "ap@globex.example"
    assert [f["code"] for f in cd.features()] == ["api_call"]
    assert cd.plans() == [] and cd.credit_packs() == []
    link = cd.billing_link(account="acme")
    assert link["url"].startswith("http") and link["expires_at"]
    with pytest.raises(creditdesk.ValidationError):  # nothing on sale: no body is valid
        cd.checkout(account="acme", credit_pack="pack_1000", success_url="https://a.example/ok",
                    cancel_url="https://a.example/no")  # fmt: skip


def test_checkout_of_a_pack_on_sale(cd, acme, offline_stripe):
    from apps.billing.catalog_sync import sync_stripe_catalog
    from tests.factories import CreditPackFactory

    CreditPackFactory(code="pack_1000", credits=1000, price="10.00")
    sync_stripe_catalog()
    session = cd.checkout(account="acme", credit_pack="pack_1000",
                          success_url="https://app.example/ok",
                          cancel_url="https://app.example/no")  # fmt: skip
    assert session["checkout_url"].startswith("http") and session["session_id"]


def test_a_contract_is_put_read_and_removed(cd, acme):
    put = cd.put_contract(account="acme", features=[{"feature": "api_call",
                          "credits_per_unit": "0.5"}], reason="pilot deal")  # fmt: skip
    assert put["state"] == "live"
    assert cd.get_contract(account="acme")["features"][0]["credits_per_unit"] == "0.5"
    assert cd.consume(account="acme", feature="api_call", quantity=4)["credits"] == "2.000000"
    cd.delete_contract(account="acme", reason="pilot over")
    with pytest.raises(creditdesk.ContractNotFound):
        cd.get_contract(account="acme")


def test_webhook_endpoints_and_a_delivery_verified(cd, acme):
    from apps.webhooks.models import WebhookEndpoint
    from apps.webhooks.services import signature_header

    created = cd.create_webhook_endpoint(url="http://127.0.0.1:9/hooks", account="acme",
                                         event_types=["credits.granted"])  # fmt: skip
    assert created["secret"].startswith("whsec_")
    assert [e["id"] for e in cd.webhook_endpoints()] == [created["id"]]
    assert cd.get_webhook_endpoint(created["id"])["event_types"] == ["credits.granted"]
    rotated = cd.rotate_webhook_secret(created["id"], overlap_hours=1)
    body = b'{"id":"evt_1","type":"credits.granted","data":{"account":"acme"}}'
    now = int(datetime.now(UTC).timestamp())
    endpoint = WebhookEndpoint.objects.get()
    secrets = endpoint.signing_secrets(datetime.now(UTC))
    headers = {"CreditDesk-Signature": signature_header(secrets=secrets, timestamp=now, body=body)}
    for secret in (created["secret"], rotated["secret"]):  # the overlap: both sign
        assert creditdesk.verify_webhook(body, headers, secret)["id"] == "evt_1"
    with pytest.raises(creditdesk.InvalidSignature, match="tolerance"):
        creditdesk.verify_webhook(body, headers, rotated["secret"], now=now + 301)
    with pytest.raises(creditdesk.InvalidSignature, match="matches"):
        creditdesk.verify_webhook(body + b" ", headers, rotated["secret"])
    with pytest.raises(creditdesk.InvalidSignature, match="no CreditDesk-Signature"):
        creditdesk.verify_webhook(body, {}, rotated["secret"])
    for broken in ("t=²,v1=" + "0" * 64, f"t={now},v1=é", f"t={now}", f"t={now},t={now},v1=x",
                   "v1=" + "0" * 64):  # fmt: skip
        with pytest.raises(creditdesk.InvalidSignature, match="without t= and v1="):
            creditdesk.verify_webhook(body, {"CreditDesk-Signature": broken}, rotated["secret"])
    with pytest.raises(ValueError, match="empty"):
        creditdesk.verify_webhook(body, headers, "")
    django_meta = {"HTTP_CREDITDESK_SIGNATURE": headers["CreditDesk-Signature"]}
    assert creditdesk.verify_webhook(body, django_meta, rotated["secret"])["type"]
    cd.delete_webhook_endpoint(created["id"])
    with pytest.raises(creditdesk.NotFound):
        cd.get_webhook_endpoint(created["id"])
    with pytest.raises(creditdesk.DestinationRefused):
        cd.create_webhook_endpoint(url="http://10.0.0.1/hooks")


def test_settings_come_from_the_environment(server, key, acme, monkeypatch):
    monkeypatch.setenv("CREDITDESK_API_KEY", key)
    monkeypatch.setenv("CREDITDESK_BASE_URL", server + "/")
    with creditdesk.CreditDesk() as client:
        assert client.get_account(account="acme")["external_id"] == "acme"
    monkeypatch.delenv("CREDITDESK_API_KEY")
    with pytest.raises(ValueError, match="CREDITDESK_API_KEY"):
        creditdesk.CreditDesk()


@pytest.mark.parametrize("external_id", ["team:42@eu", ".", "..", "a/b"])
def test_an_account_id_is_sent_as_one_path_segment(cd, transactional_db, external_id):
    AccountFactory(external_id="balance")  # what ".." would reach if a URL resolved it
    if external_id == "a/b":  # not an id the API takes: no such path, never another one
        with pytest.raises(creditdesk.NotFound) as missing:
            cd.get_account(account=external_id)
        assert missing.value.code == "not_found"
        return
    AccountFactory(external_id=external_id)
    assert cd.get_account(account=external_id)["external_id"] == external_id


def test_a_reserve_replayed_by_a_key_whose_hold_is_gone_does_not_run_the_block(cd, acme):
    with cd.reserve("acme", "api_call", 5, idempotency_key="render-1") as hold:
        hold.commit(5)
    replayed = cd.reserve("acme", "api_call", 5, idempotency_key="render-1")
    with pytest.raises(creditdesk.ReservationNotHeld, match="committed"), replayed:
        pytest.fail("nothing is held for this block")
    assert wallet_of(acme).balance == D(95)
