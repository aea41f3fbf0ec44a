"""The example app (examples/notes) end to end: its own Django process, the Python client
inside it, a live CreditDesk behind it, driven over HTTP as its users would."""

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from apps.accounts.services import create_api_key
from apps.webhooks.services import signature_header
from tests.factories import AccountFactory, FeatureFactory
from tests.ledger import D, give, wallet_of
from tests.processes import spare_port, wait_until_listening

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_notes_example"

pytestmark = [
    pytest.mark.postgres,  # the live server needs a database its threads share
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def notes(wsgi_server, transactional_db, tmp_path):
    """The notes app on a port of its own, pointed at the live CreditDesk."""
    _, key = create_api_key(name="notes", scopes=["usage:read", "usage:write"])
    port = spare_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "clients/python/src"),
        "CREDITDESK_API_KEY": key,
        "CREDITDESK_BASE_URL": wsgi_server[0],
        "CREDITDESK_WEBHOOK_SECRET": SECRET,
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    log = (tmp_path / "notes.log").open("w")  # a file: a pipe nobody reads could fill up
    process = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=ROOT / "examples/notes", env=env,
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_until_listening(port, process, tmp_path / "notes.log")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Team": "acme"},
                          timeout=30) as client:  # fmt: skip
            yield client
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
def acme(transactional_db):
    FeatureFactory(code="notes.summarize", credits_per_unit=D(1))
    FeatureFactory(code="notes.render", credits_per_unit=D(2))
    account = AccountFactory(external_id="acme")
    give(account, 30)
    return account


def test_a_summary_is_charged_before_the_work_and_refused_the_apps_way(acme, notes):
    answer = notes.post("/summarize", content=b"Quarterly numbers are up")
    assert answer.status_code == 200 and answer.json() == {"summary": "Quarterly numbers are up"}
    assert wallet_of(acme).balance == D(29)
    assert notes.get("/credits").json() == {"credits": "29.000000"}
    for _ in range(29):
        assert notes.post("/summarize", content=b"x").status_code == 200
    refused = notes.post("/summarize", content=b"one too many")
    assert refused.status_code == 402
    assert refused.json() == {
        "refused": "insufficient_credits",
        "details": {"credit_type": "credits", "credits_required": "1", "available": "0"},
        "buy_more": "/pricing",
    }
    assert wallet_of(acme).balance == D(0)


def test_a_render_holds_the_most_it_may_take_and_is_charged_what_it_took(acme, notes):
    rendered = notes.post("/render?max_pages=10", content=b"p" * 350)  # 3 pages, 2 credits each
    assert rendered.json() == {"pages": 3}
    assert wallet_of(acme).balance == D(24) and wallet_of(acme).held == D(0)
    failed = notes.post("/render", content=b"")  # the view raises: the hold is released
    assert failed.status_code == 500
    assert wallet_of(acme).balance == D(24) and wallet_of(acme).held == D(0)
    too_big = notes.post("/render?max_pages=20", content=b"p" * 100)  # 40 credits to hold
    assert too_big.status_code == 402 and too_big.json()["refused"] == "insufficient_credits"


def test_the_webhook_view_takes_only_signed_deliveries(acme, notes):
    body = b'{"id":"evt_1","type":"credits.granted","data":{"account":"acme"}}'
    now = int(datetime.now(UTC).timestamp())
    signed = signature_header(secrets=[SECRET], timestamp=now, body=body)
    headers = {"CreditDesk-Signature": signed, "Content-Type": "application/json"}
    assert notes.post("/hooks/creditdesk", content=body, headers=headers).status_code == 204
    forged = signature_header(secrets=["whsec_someone_else"], timestamp=now, body=body)
    answer = notes.post("/hooks/creditdesk", content=body,
                        headers={**headers, "CreditDesk-Signature": forged})  # fmt: skip
    assert answer.status_code == 400 and "no signature matches" in answer.text
