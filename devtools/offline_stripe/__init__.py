"""The offline Stripe: a small stand-in for Stripe's HTTP API, for the demo (`make run`, no
keys configured) and the tests. A development tool, not part of the product: only the local
settings install it (`manage.py offline_stripe`); the tests import its modules.

The real `stripe` client talks to it over HTTP (its `api_base` points here); it answers the
calls CreditDesk and dj-stripe make with Stripe-shaped JSON, serves a local "pay" page for
Checkout Sessions, and sends the resulting events to every registered webhook endpoint,
signed exactly as Stripe signs them
(`Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`), so they pass
through dj-stripe's real webhook view.

It keeps its objects in memory (and, for the demo, in a JSON file so a restart keeps them).
It is not a Stripe emulator: it knows the objects and the few state changes this project
uses, and answers everything else with Stripe's 404 error. `/_offline/...` routes play what
happens outside the API in real Stripe (a renewal, a failed payment, a dispute).
"""
