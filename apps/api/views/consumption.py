from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from apps.core import metrics
from apps.core.errors import AccountNotFound, DomainError, NotFound
from apps.usage import selectors as usage_selectors
from apps.usage import services as usage_services
from apps.usage.services import ChargedUsage, ConsumeRequest
from apps.wallets.models import Reservation

from .. import serializers
from ..errors import BatchTooLarge, domain_status, error_body
from ..fields import format_credits
from .base import IDEMPOTENCY_PARAMETER, REPLAYED, ApiView

WRITE = ("usage:write",)
BATCH_MAX = serializers.BATCH_MAX


class CheckView(ApiView):
    # Read by the fast lane too (apps/api/fast_lane.py), which answers this view's requests.
    required_scopes = WRITE
    input_serializer = serializers.CheckIn
    output_serializer = serializers.CheckOut

    @extend_schema(
        request=input_serializer,
        responses=output_serializer,
        summary="Would a consume succeed now? Writes nothing",
        examples=[
            OpenApiExample(
                "Quota used up",
                response_only=True,
                value={
                    "allowed": False,
                    "reason": "quota_exceeded",
                    "credits_required": None,
                    "credit_type": "credits",
                    "available": None,
                },
            ),
        ],
    )
    def post(self, request):
        data = self.valid(self.input_serializer, request.data)
        result = usage_selectors.check(
            account=self.account_for(data["account"]),
            feature=data["feature"],
            quantity=data["quantity"],
        )
        return Response(self.output_serializer(result).data)


class ConsumeView(ApiView):
    # Read by the fast lane too (apps/api/fast_lane.py), which answers this view's requests.
    required_scopes = WRITE
    input_serializer = serializers.ConsumeIn
    output_serializer = serializers.ConsumeOut

    @extend_schema(
        request=input_serializer,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: output_serializer},
        summary="Charge a feature's use; all or nothing, idempotent by key",
        examples=[
            OpenApiExample(
                "Three searches",
                request_only=True,
                value={
                    "account": "acme-42",
                    "feature": "api_call",
                    "quantity": "3",
                    "idempotency_key": "req-7f3a",
                    "metadata": {"endpoint": "/search"},
                },
            ),
            OpenApiExample(
                "Charged",
                response_only=True,
                status_codes=["201"],
                value={
                    "id": 1812,
                    "account": "acme-42",
                    "feature": "api_call",
                    "quantity": "3.000000",
                    "credits": "3.000000",
                    "credit_type": "credits",
                    "balance_after": "994.000000",
                    "available_after": "994.000000",
                    "created_at": "2026-11-25T09:30:00Z",
                },
            ),
            OpenApiExample(
                "Not enough credits",
                response_only=True,
                status_codes=["402"],
                value={
                    "error": {
                        "code": "insufficient_credits",
                        "message": "3 credits needed, 1 available.",
                        "details": {
                            "credit_type": "credits",
                            "credits_required": "3",
                            "available": "1",
                        },
                    }
                },
            ),
        ],
    )
    def post(self, request):
        data = self.valid(self.input_serializer, request.data)
        try:
            outcome = usage_services.consume(account=self.account_for(data.pop("account")), **data)
        except DomainError as error:
            metrics.count_consume(outcome=error.code)
            raise
        metrics.count_charged(replayed=outcome.replayed)
        return Response(
            self.output_serializer(outcome.usage_event).data,
            status=status.HTTP_201_CREATED,
            headers=REPLAYED if outcome.replayed else None,
        )


class ConsumeBatchView(ApiView):
    required_scopes = WRITE

    @extend_schema(
        request=serializers.BatchIn,
        responses={200: serializers.BatchOut},
        summary="Consume 1-1000 events; each stands alone, results in order",
        examples=[
            OpenApiExample(
                "One charged, one refused",
                response_only=True,
                value={
                    "results": [
                        {
                            "index": 0,
                            "status": 201,
                            "id": 1813,
                            "credits": "1.000000",
                            "replayed": False,
                        },
                        {
                            "index": 1,
                            "status": 402,
                            "error": {
                                "code": "insufficient_credits",
                                "message": "1000000000 credits needed, 993 available.",
                                "details": {
                                    "credit_type": "credits",
                                    "credits_required": "1000000000",
                                    "available": "993",
                                },
                            },
                        },
                    ]
                },
            ),
        ],
    )
    def post(self, request):
        events = request.data.get("events") if isinstance(request.data, dict) else None
        if not isinstance(events, list) or not events:
            raise ValidationError({"events": [f"a list of 1-{BATCH_MAX} consume bodies"]})
        if not all(isinstance(event, dict) for event in events):
            raise ValidationError({"events": ["each event is a JSON object"]})
        if len(events) > BATCH_MAX:
            raise BatchTooLarge(f"{len(events)} events; at most {BATCH_MAX} per batch.")
        results, valid = [None] * len(events), {}
        # One serializer validates every event in turn: building one per event (DRF copies
        # its fields each time) would cost more than the consume itself.
        checker = serializers.ConsumeIn()
        for index, event in enumerate(events):
            try:
                valid[index] = checker.run_validation(event)
            except ValidationError as error:
                body = error_body("validation_error", "The event is not valid.", error.detail)
                results[index] = {"index": index, "status": 400, "error": body["error"]}
        # One query for all the batch's accounts, not one per event.
        accounts = self.accounts_for({data["account"] for data in valid.values()})
        requests, positions = [], []
        for index, data in valid.items():
            try:
                account = accounts.get(data.pop("account"))
                if account is None:
                    raise AccountNotFound()
                requests.append(ConsumeRequest.build(account=account, **data))
                positions.append(index)
            except DomainError as error:
                results[index] = _error_result(index, error)
        for index, outcome in zip(positions, usage_services.consume_batch(requests=requests),
                                  strict=True):  # fmt: skip
            if outcome.error is not None:
                results[index] = _error_result(index, outcome.error)
            else:
                metrics.count_charged(replayed=outcome.replayed)
                results[index] = {
                    "index": index,
                    "status": 201,
                    "id": outcome.usage_event.pk,
                    "credits": format_credits(outcome.usage_event.credits),
                    "replayed": outcome.replayed,
                }
        # Already in BatchOut's shape (the schema's); a serializer pass over 1,000 results
        # would cost more than the batch's database work.
        return Response({"results": results})


def _error_result(index, error):
    """A refused event's result, counted in the metrics as the single consume's refusal is."""
    metrics.count_consume(outcome=error.code)
    body = error_body(error.code, error.message, error.details)["error"]
    return {"index": index, "status": domain_status(error), "error": body}


# --- reservations ----------------------------------------------------------------------------


class ReservationCreateView(ApiView):
    required_scopes = WRITE

    @extend_schema(
        request=serializers.ReserveIn,
        parameters=[IDEMPOTENCY_PARAMETER],
        responses={201: serializers.ReservationOut},
        summary="Hold credits for a use whose size is known later",
    )
    def post(self, request):
        data = self.valid(serializers.ReserveIn, request.data)
        reservation, replayed = usage_services.reserve(
            account=self.account_for(data.pop("account")), **data
        )
        reservation = _reservation(reservation.pk)
        return Response(
            serializers.ReservationOut(reservation).data,
            status=status.HTTP_201_CREATED,
            headers=REPLAYED if replayed else None,
        )


def _reservation(pk):
    return Reservation.objects.select_related("account", "feature").get(pk=pk)


class ReservationMixin:
    def reservation_for(self, reservation_id):
        """The reservation, if this key may see its account; else not_found (404)."""
        found = Reservation.objects.select_related("account", "feature").filter(pk=reservation_id)
        reservation = found.first()
        if reservation is None or not self.may_see(reservation.account_id):
            raise NotFound("No reservation has that id.")
        return reservation


class ReservationView(ReservationMixin, ApiView):
    required_scopes = ("usage:read",)

    @extend_schema(responses=serializers.ReservationOut, summary="A reservation")
    def get(self, request, reservation_id):
        return Response(serializers.ReservationOut(self.reservation_for(reservation_id)).data)


class ReservationCommitView(ReservationMixin, ApiView):
    required_scopes = WRITE

    @extend_schema(
        request=serializers.CommitIn,
        responses=serializers.CommitOut,
        summary="Charge the actual use and release the hold",
    )
    def post(self, request, reservation_id):
        self.reservation_for(reservation_id)
        data = self.valid(serializers.CommitIn, request.data)
        reservation, event = usage_services.commit_reservation(
            reservation_id=reservation_id, **data
        )
        body = {"reservation": _reservation(reservation.pk), "usage_event": ChargedUsage.of(event)}
        return Response(serializers.CommitOut(body).data)


class ReservationReleaseView(ReservationMixin, ApiView):
    required_scopes = WRITE

    @extend_schema(request=None, responses=serializers.ReservationOut, summary="Release a hold")
    def post(self, request, reservation_id):
        self.reservation_for(reservation_id)
        reservation = usage_services.release_reservation(reservation_id=reservation_id)
        return Response(serializers.ReservationOut(_reservation(reservation.pk)).data)
