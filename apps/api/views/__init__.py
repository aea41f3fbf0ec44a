from .accounts import AccountView, BalanceView, EntitlementsView, LedgerView, UsageView
from .billing import BillingLinkView, CheckoutView
from .catalog import CreditPackListView, FeatureListView, PlanListView
from .consumption import (
    CheckView,
    ConsumeBatchView,
    ConsumeView,
    ReservationCommitView,
    ReservationCreateView,
    ReservationReleaseView,
    ReservationView,
)
from .contracts import ContractView
from .grants import GrantCreateView
from .webhooks import WebhookEndpointListView, WebhookEndpointRotateView, WebhookEndpointView

__all__ = [
    "AccountView", "BalanceView", "BillingLinkView", "CheckView", "CheckoutView",
    "ConsumeBatchView", "ConsumeView", "ContractView", "CreditPackListView", "EntitlementsView",
    "FeatureListView", "GrantCreateView", "LedgerView", "PlanListView",
    "ReservationCommitView", "ReservationCreateView", "ReservationReleaseView",
    "ReservationView", "UsageView", "WebhookEndpointListView", "WebhookEndpointRotateView",
    "WebhookEndpointView",
]  # fmt: skip
