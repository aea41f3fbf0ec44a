from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.accounts.selectors import live_subscription
from apps.core.replicas import reads_from_replica
from apps.usage import selectors as usage_selectors
from apps.wallets import selectors as wallet_selectors

from .. import serializers
from ..services import sync_account
from .base import ApiView

READ, WRITE = ("usage:read",), ("accounts:write",)


def account_body(account):
    subscription = live_subscription(account=account)
    return serializers.AccountOut(
        {
            "external_id": account.external_id,
            "name": account.name,
            "email": account.email,
            "status": account.status,
            "plan": subscription.plan.code if subscription else None,
            "plan_version": subscription.plan.version if subscription else None,
            "subscription_status": subscription.status if subscription else None,
            "current_period_start": subscription.current_period_start if subscription else None,
            "current_period_end": subscription.current_period_end if subscription else None,
            "metadata": account.metadata,
            "created_at": account.created_at,
        }
    ).data


class AccountView(ApiView):
    required_scopes = {"GET": READ, "PUT": WRITE}

    @extend_schema(responses=serializers.AccountOut, summary="An account")
    def get(self, request, external_id):
        return Response(account_body(self.account_for(external_id)))

    @extend_schema(
        request=serializers.AccountIn,
        responses={200: serializers.AccountOut, 201: serializers.AccountOut},
        summary="Create or update an account (201 created, 200 updated)",
    )
    def put(self, request, external_id):
        data = self.valid(serializers.AccountIn, request.data)
        if request.auth.account_id is not None:
            self.account_for(external_id)  # a bound key cannot create other accounts
            if "plan" in data:
                self.service_key_only("change plans")
        fields = {k: data[k] for k in ("name", "email", "metadata") if k in data}
        account, created = sync_account(
            external_id=external_id, fields=fields, plan_code=data.get("plan")
        )
        return Response(
            account_body(account), status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )


class BalanceView(ApiView):
    required_scopes = READ

    @extend_schema(
        parameters=[serializers.BalanceQuery],
        responses=serializers.BalanceOut,
        summary="Balance per credit type, now or as it stood at `at`",
    )
    def get(self, request, external_id):
        account = self.account_for(external_id)
        query = self.valid(serializers.BalanceQuery, request.query_params)
        wallets = wallet_selectors.balances(
            account=account,
            overdraft_limit=usage_selectors.overdraft_limit(account=account),
            at=query.get("at"),
        )
        body = {"account": account.external_id, "at": query.get("at"), "wallets": wallets}
        return Response(serializers.BalanceOut(body).data)


class EntitlementsView(ApiView):
    required_scopes = READ

    @extend_schema(
        responses=serializers.EntitlementsOut,
        summary="What the account may use, and where each term comes from",
    )
    def get(self, request, external_id):
        account = self.account_for(external_id)
        rows = usage_selectors.entitlements(account=account)
        subscription = live_subscription(account=account)
        features = [
            {
                "feature": t.feature.code,
                "kind": t.feature.kind,
                "enabled": t.enabled and account.status == account.Status.ACTIVE,
                "credit_type": t.feature.credit_type.code if t.feature.credit_type_id else None,
                "credits_per_unit": t.credits_per_unit if t.feature.kind == "metered" else None,
                "limit_per_period": t.limit_per_period,
                "used_this_period": used,
                "source": t.source,
            }
            for t, used in rows
        ]
        body = {
            "account": account.external_id,
            "plan": subscription.plan.code if subscription else None,
            "plan_version": subscription.plan.version if subscription else None,
            "subscription_status": subscription.status if subscription else None,
            "period_end": subscription.current_period_end if subscription else None,
            "features": features,
        }
        return Response(serializers.EntitlementsOut(body).data)


class LedgerView(ApiView):
    required_scopes = READ

    @extend_schema(
        parameters=[serializers.LedgerQuery],
        responses=serializers.LedgerPageOut,
        summary="Ledger entries, newest first, a page at a time",
    )
    @reads_from_replica
    def get(self, request, external_id):
        account = self.account_for(external_id)
        query = self.valid(serializers.LedgerQuery, request.query_params)
        before_id = _cursor(query.get("cursor"))
        entries, more = wallet_selectors.ledger_page(
            account=account,
            credit_type=query.get("credit_type"),
            kind=query.get("kind"),
            since=query.get("since"),
            until=query.get("until"),
            before_id=before_id,
            limit=query["limit"],
        )
        next_cursor = f"b{entries[-1].pk}" if more else None
        return Response(serializers.LedgerPageOut({"results": entries, "next": next_cursor}).data)


def _cursor(value):
    """The entry id in a cursor LedgerQuery has checked (serializers.CURSOR_PATTERN)."""
    return None if value is None else int(value[1:])


class UsageView(ApiView):
    required_scopes = READ

    @extend_schema(
        parameters=[serializers.UsageQuery],
        responses=serializers.UsageOut,
        summary="Usage events, newest first, a page at a time; or totals per day or feature",
    )
    @reads_from_replica
    def get(self, request, external_id):
        account = self.account_for(external_id)
        query = self.valid(serializers.UsageQuery, request.query_params)
        filters = {k: query.get(k) for k in ("feature", "since", "until")}
        body = {"account": account.external_id, "group_by": query.get("group_by"), "next": None}
        if query.get("group_by"):
            body["totals"] = usage_selectors.usage_totals(
                account=account, group_by=query["group_by"], **filters
            )
        else:
            events, more = usage_selectors.usage_page(
                account=account, after=query.get("cursor"), limit=query["limit"], **filters
            )  # fmt: skip
            body["events"] = events
            body["next"] = serializers.usage_cursor(events[-1]) if more else None
        return Response(serializers.UsageOut(body).data)
