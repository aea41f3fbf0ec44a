"""The consume path's PostgreSQL functions: declared here once (name, version, file), rendered
from the constants the Python engine uses too (docs/ledger.md, "Where each rule lives").

Changing a rule is an edit of its constant, then `manage.py sqlfunctions --make` (a migration
that installs the new rendering). A change of a function's arguments or result also raises its
version here: old app processes keep calling the old name during a rolling deploy.
"""

from pathlib import Path

from apps.accounts.models import Account, Subscription
from apps.accounts.services import LAST_USED_PRECISION
from apps.catalog.models import VERSION_MARK, Feature, Plan
from apps.core import errors
from apps.core.decimals import CREDIT_DIGITS, CREDIT_PLACES
from apps.core.sqlfunctions import SQLFunction
from apps.wallets.models import LedgerEntry, burn_down_sql

from .. import outcomes

HERE = Path(__file__).resolve().parent

# Raised by the consume function, before it writes anything, when a wallet holds a grant past
# its expiry: the Python ledger engine closes it (rollover, expiry, events).
CLOSING_SQLSTATE = "CD001"


def literal(text):
    """A SQL string literal (the constants rendered here are plain words)."""
    text = str(text)
    if "'" in text or "\\" in text:
        raise ValueError(f"not a plain word: {text!r}")
    return f"'{text}'"


# The API functions' first steps: the caller function's row into `c`, then the key's use
# recorded when it is due (the caller function says so). Another request recording it at the
# same moment holds its row: skip it rather than wait, since that request records the same
# minute.
FIND_CALLER = """SELECT * INTO c FROM {caller}(
        p_prefix, p_key_hash, p_scope, p_rate_count, p_rate_default, p_external_id, p_now);
    IF c.use_unrecorded AND c.refusal IS DISTINCT FROM {refused_key} THEN
        UPDATE accounts_apikey SET last_used_at = p_now
        WHERE id = (SELECT k.id FROM accounts_apikey k WHERE k.id = c.api_key_id
                    AND (k.last_used_at IS NULL OR k.last_used_at <= p_now - {precision})
                    FOR UPDATE SKIP LOCKED);
    END IF;"""


def context():
    """Every placeholder's value, from the constants as they stand now."""
    codes = [
        errors.AccountSuspended, errors.FeatureNotFound, errors.FeatureNotEnabled,
        errors.QuotaExceeded, errors.InsufficientCredits, errors.IdempotencyKeyReused,
    ]  # fmt: skip
    precision = f"interval {literal(f'{LAST_USED_PRECISION.total_seconds():g} seconds')}"
    outcome_names = [
        outcomes.CREATED,
        outcomes.REPLAYED,
        outcomes.FEATURE_IS_BOOLEAN,
        outcomes.INVALID_COST,
        outcomes.ALLOWED,
        *outcomes.REFUSALS,
    ]
    return {
        **{error.code: literal(error.code) for error in codes},
        **{name: literal(name) for name in outcome_names},
        "live_statuses": "(" + ", ".join(literal(s) for s in Subscription.LIVE_STATUSES) + ")",
        "account_active": literal(Account.Status.ACTIVE),
        "subscription_trialing": literal(Subscription.Status.TRIALING),
        "feature_metered": literal(Feature.Kind.METERED),
        "overage_allow": literal(Plan.OveragePolicy.ALLOW),
        "source_feature": literal(outcomes.SOURCE_FEATURE),
        "source_plan": literal(outcomes.SOURCE_PLAN),
        "source_contract": literal(outcomes.SOURCE_CONTRACT),
        "version_mark": literal(VERSION_MARK),
        "entry_consume": literal(LedgerEntry.Kind.CONSUME),
        "entry_overage": literal(LedgerEntry.Kind.OVERAGE),
        "burn_down_order": burn_down_sql("g"),
        "credit_places": CREDIT_PLACES,
        "credits_limit": 10 ** (CREDIT_DIGITS - CREDIT_PLACES),
        "closing_sqlstate": literal(CLOSING_SQLSTATE),
        "terms_function": TERMS.sql_name,
        "consume_function": CONSUME.sql_name,
        "check_function": CHECK.sql_name,
        "last_used_precision": precision,
        "find_caller": FIND_CALLER.format(
            caller=CALLER.sql_name, refused_key=literal(outcomes.REFUSED_KEY), precision=precision
        ),
        "now": "p_now",  # the moment the terms are for (the demo clock's, apps/core/clock.py)
        "requests": (
            "unnest(p_account_ids, p_feature_codes) WITH ORDINALITY AS r(account_id, "
            "feature_code, ord)"
        ),
    }


TERMS = SQLFunction(
    app_label="usage", name="creditdesk_terms", version=3, template=HERE / "terms.sql",
    context=context,
)  # fmt: skip
CONSUME_BATCH = SQLFunction(
    app_label="usage", name="creditdesk_consume_batch", version=2,
    template=HERE / "consume_batch.sql", context=context,
)  # fmt: skip
# One event: the batch function's steps in scalar statements, kept because it is faster
# (consume.sql says why); the differential test holds the two equal.
CONSUME = SQLFunction(
    app_label="usage", name="creditdesk_consume", version=2, template=HERE / "consume.sql",
    context=context,
)  # fmt: skip
# Would a consume succeed (selectors.check on PostgreSQL).
CHECK = SQLFunction(
    app_label="usage", name="creditdesk_check", version=1, template=HERE / "check.sql",
    context=context,
)  # fmt: skip
# The API's calls, each one statement with its authentication (apps/api/fast_lane.py).
CALLER = SQLFunction(
    app_label="usage", name="creditdesk_api_caller", version=1,
    template=HERE / "api_caller.sql", context=context,
)  # fmt: skip
API_CONSUME = SQLFunction(
    app_label="usage", name="creditdesk_api_consume", version=1,
    template=HERE / "api_consume.sql", context=context,
)  # fmt: skip
API_CHECK = SQLFunction(
    app_label="usage", name="creditdesk_api_check", version=1,
    template=HERE / "api_check.sql", context=context,
)  # fmt: skip
# In the order they are installed: each after those it calls.
FUNCTIONS = [TERMS, CONSUME_BATCH, CONSUME, CHECK, CALLER, API_CONSUME, API_CHECK]
