from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response

from apps.catalog.contracts import (
    contract_document,
    contract_of,
    contract_state,
    put_contract,
    remove_contract,
)
from apps.core import clock
from apps.core.errors import ContractNotFound

from .. import serializers
from .base import ApiView


def contract_body(account, contract):
    return serializers.ContractOut(
        {
            "account": account.external_id,
            "state": contract_state(contract, clock.now()),
            **contract_document(contract),
            "created_at": contract.created_at,
            "updated_at": contract.updated_at,
        }
    ).data


class ContractView(ApiView):
    """An account's contract (docs/contracts.md). Only service keys write it: a key bound to
    an account may read its own, never set its own prices."""

    required_scopes = ("accounts:write",)

    @extend_schema(responses=serializers.ContractOut, summary="The account's contract")
    def get(self, request, external_id):
        account = self.account_for(external_id)
        contract = contract_of(account=account)
        if contract is None:
            raise ContractNotFound()
        return Response(contract_body(account, contract))

    @extend_schema(
        request=serializers.ContractIn,
        responses={200: serializers.ContractOut, 201: serializers.ContractOut},
        summary="Set the account's contract, replacing it (201 created, 200 replaced)",
    )
    def put(self, request, external_id):
        account = self._writable(external_id)
        terms = dict(request.data) if isinstance(request.data, dict) else request.data
        reason = terms.pop("reason", "") if isinstance(terms, dict) else ""
        reason = self.valid(serializers.ContractReasonIn, {"reason": reason})["reason"]
        contract, created = put_contract(
            account=account, raw=terms, reason=self._reason(reason, "set")
        )
        return Response(
            contract_body(account, contract),
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=[serializers.ContractReasonIn],
        responses={204: None},
        summary="Remove the account's contract: its plan's terms apply again",
    )
    def delete(self, request, external_id):
        account = self._writable(external_id)
        reason = self.valid(serializers.ContractReasonIn, request.query_params).get("reason", "")
        remove_contract(account=account, reason=self._reason(reason, "removed"))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _writable(self, external_id):
        account = self.account_for(external_id)
        self.service_key_only("set contracts")
        return account

    def _reason(self, reason, verb):
        """The history's why: the caller's reason, else what happened, and by which key."""
        return f"API key {self.request.auth.prefix}: {reason or f'contract {verb}'}"
