"""dj-stripe's admin pages are for superusers; its "re-sync from Stripe" page checked only that
the user was staff."""

import pytest
from django.contrib.auth import get_user_model

from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SYNC_ALL = "/admin/djstripe/customer/action/_sync_all_instances/customer/"


@pytest.mark.parametrize("groups", [["Support"], ["Finance"], ["Pricing"], []])
def test_staff_cannot_open_or_run_the_sync_from_stripe_page(client, groups):
    client.force_login(UserFactory(groups=groups))
    assert client.get(SYNC_ALL).status_code == 403
    assert client.post(SYNC_ALL, {"_selected_action": ["_sync_all_instances"]}).status_code == 403


def test_superusers_still_reach_it(client):
    client.force_login(get_user_model().objects.create_superuser("root", "r@x.io", "pw"))
    confirm = client.post(SYNC_ALL, {})  # nothing confirmed yet: dj-stripe asks again
    assert confirm.status_code == 200
    assert "_sync_all_instances" in confirm.content.decode()
