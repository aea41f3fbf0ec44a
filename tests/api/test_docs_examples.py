"""Every curl example of docs/api.md, run in order against the API: a newcomer who copies
them gets what the page says (a 2xx, or the error the page shows)."""

import json
import re
import shlex
from pathlib import Path

import pytest

from tests.factories import PlanFactory
from tests.ledger import give, priced_account

pytestmark = pytest.mark.django_db
DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def curl_commands():
    """The curl commands of the page's shell blocks, continuation lines joined."""
    blocks = re.findall(r"```sh\n(.*?)```", DOC.read_text(), re.S)
    text = "\n".join(blocks).replace("\\\n", " ")
    commands, current = [], ""
    for line in text.splitlines():
        if current or line.strip().startswith("curl "):
            current = f"{current} {line.strip()}" if current else line.strip()
            if current.count("'") % 2 == 0:  # a quoted body may span lines
                commands.append(current)
                current = ""
    return commands


def parse(command):
    words = shlex.split(command.replace("$CD", "/api/v1"))
    method, body, path = "GET", None, None
    for i, word in enumerate(words):
        if word == "-X":
            method = words[i + 1]
        elif word == "-d":
            body = json.loads(words[i + 1])
        elif word.startswith("/api/v1"):
            path = word
    return method, path, body


def test_the_page_has_examples_for_every_flow():
    assert len(curl_commands()) == 13
    paths = {parse(c)[1].split("?")[0] for c in curl_commands()}
    assert {"/api/v1/check", "/api/v1/consume", "/api/v1/consume/batch",
            "/api/v1/reservations", "/api/v1/accounts/acme-42/grants"} <= paths  # fmt: skip


def test_every_example_answers_as_the_page_says(authed_client):
    plan = PlanFactory(code="starter")
    account, _ = priced_account(external_id="acme-42", plan=plan)
    give(account, 1000)
    reservation_id = None
    for command in curl_commands():
        method, path, body = parse(command)
        if reservation_id is not None:
            path = path.replace("/reservations/77/", f"/reservations/{reservation_id}/")
        response = getattr(authed_client, method.lower())(path, body, format="json")
        assert response.status_code < 300, (command, response.json())
        if path == "/api/v1/reservations":
            reservation_id = response.json()["id"]
        if path == "/api/v1/consume/batch":
            statuses = [r["status"] for r in response.json()["results"]]
            assert statuses == [201, 402]
