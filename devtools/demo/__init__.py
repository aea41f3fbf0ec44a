"""The demo data `make run` loads (`manage.py setup_demo`): the price book in
demo/catalog.yaml, three accounts on plans and a local superuser."""
