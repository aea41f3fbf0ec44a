"""The hot path has a fixed query budget, however many grants a consume draws from."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.usage.services import consume
from tests.ledger import D, give, priced_account

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("consume_path")]

BUDGET = {"database function": 1, "python": 8}


def queries_of(call):
    """Statements a call issues, leaving out the savepoints the test's own transaction adds."""
    with CaptureQueriesContext(connection) as ctx:
        call()
    return [
        q["sql"] for q in ctx.captured_queries
        if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))
    ]  # fmt: skip


@pytest.mark.parametrize("grants", [1, 50])
def test_consume_stays_within_budget_whether_it_draws_from_one_grant_or_fifty(grants, consume_path):
    account, _ = priced_account()
    for _ in range(grants):
        give(account, "0.5")
    statements = queries_of(
        lambda: consume(
            account=account,
            feature="api_call",
            quantity=D(grants) / 2,
            idempotency_key=f"budget-{grants}",
        )  # fmt: skip
    )
    assert len(statements) <= BUDGET[consume_path], statements


QUOTA_BUDGET = {"database function": 1, "python": 11}


def test_consume_with_a_quota_stays_within_its_budget(consume_path):
    account, _ = priced_account(plan=True, plan_feature={"limit_per_period": D(100)})
    give(account, 10)
    statements = queries_of(
        lambda: consume(account=account, feature="api_call", idempotency_key="budget")
    )
    # The portable path locks the quota counter with statements of its own (create, lock,
    # write back); PostgreSQL does it inside its one call.
    assert len(statements) <= QUOTA_BUDGET[consume_path], statements
