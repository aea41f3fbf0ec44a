"""The price book's history: anyone who may read it sees it; only Pricing may revert it."""

from decimal import Decimal

import pytest

from tests.factories import CreditPackFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def repriced_pack():
    pack = CreditPackFactory(credits=Decimal("1000"), price=Decimal("10.00"))
    pack.price = Decimal("12.00")
    pack.save()
    return pack


def revert_form(pack, **changes):
    return {
        "code": pack.code,
        "name": pack.name,
        "description": "",
        "credit_type": pack.credit_type_id,
        "credits": "1000",
        "price": "10.00",
        "currency": "USD",
        "expires_after_days": "",
        "public": "on",
        "active": "on",
        **changes,
    }


@pytest.mark.parametrize("group", ["Support", "Finance"])
def test_read_only_staff_cannot_rewrite_a_pack_through_its_history(client, repriced_pack, group):
    client.force_login(UserFactory(groups=[group]))
    oldest = repriced_pack.history.order_by("history_id").first()
    url = f"/admin/catalog/creditpack/{repriced_pack.pk}/history/{oldest.history_id}/"
    assert client.get(url).status_code == 200
    response = client.post(url, revert_form(repriced_pack, credits="99999999", price="0.01"))
    assert response.status_code == 403
    repriced_pack.refresh_from_db()
    assert (repriced_pack.credits, repriced_pack.price) == (Decimal("1000"), Decimal("12.00"))


def test_pricing_reverts_a_pack_to_an_earlier_price(client, repriced_pack):
    client.force_login(UserFactory(groups=["Pricing"]))
    oldest = repriced_pack.history.order_by("history_id").first()
    url = f"/admin/catalog/creditpack/{repriced_pack.pk}/history/{oldest.history_id}/"
    response = client.post(url, revert_form(repriced_pack))
    assert response.status_code == 302, response.content.decode()[:3000]
    repriced_pack.refresh_from_db()
    assert repriced_pack.price == Decimal("10.00")
