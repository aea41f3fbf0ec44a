"""The offline Stripe over HTTP: the WSGI application (Stripe's API under `/v1/`, the pay
page, the `/_offline/...` controls) and a threaded server for it."""

import html
import json
import logging
import secrets
import threading
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .wire import API_VERSION, RESOURCES, StripeError, decode_form, missing

logger = logging.getLogger(__name__)


LOST = {"lost": True}  # an answer that was a 500 (replayed as one)


class OfflineStripeApp:
    """The WSGI application in front of an `OfflineStripe`."""

    def __init__(self, stripe):
        self.stripe = stripe

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length).decode() if length else ""
        query = environ.get("QUERY_STRING", "")
        try:
            if path.startswith("/v1/"):
                if not environ.get("HTTP_AUTHORIZATION", "").startswith("Bearer sk_"):
                    raise StripeError(401, "Invalid API Key provided.")
                key = environ.get("HTTP_IDEMPOTENCY_KEY")
                replayed = self.stripe.idempotent.get(key) if method == "POST" else None
                if replayed is None:
                    params = decode_form(body if method == "POST" else query)
                    with self.stripe.lock:  # a hold is for a write begun after it was set
                        hold = self.stripe.holds.pop(path[4:], None) if method == "POST" else None
                        answer = self.stripe.run(self.api, method, path[4:], params)
                    if method == "POST" and self.stripe.lose_next_answer:
                        # Done at Stripe, then a 500 (`lose_next_answer`); as Stripe does, a
                        # retry with the same key gets the same 500.
                        self.stripe.lose_next_answer = False
                        answer = LOST
                    if key and method == "POST":
                        self.stripe.idempotent[key] = answer
                    if hold is not None:
                        hold.wait()  # done at Stripe; the answer waits (`hold_next_answer`)
                if (replayed or answer) is LOST:
                    raise StripeError(500, "An unknown error occurred.", kind="api_error")
                return self._json(start_response, 200, replayed or answer)
            if path.startswith("/pay/"):
                return self.pay_page(start_response, method, path[5:], decode_form(body))
            if path.startswith("/_offline/") and method == "POST":
                return self._json(
                    start_response, 200, self.stripe.run(self.control, path[10:], decode_form(body))
                )
            if path in ("", "/"):
                return self._html(start_response, 200, "Offline Stripe", "<p>Running.</p>")
            raise missing("route", path)
        except StripeError as error:
            return self._json(start_response, error.status, error.body)

    def api(self, method, path, params):
        stripe = self.stripe
        if path == "account" and method == "GET":
            return stripe.account()
        for prefix, kind in sorted(RESOURCES.items(), key=lambda r: -len(r[0])):
            if path == prefix:
                if method == "POST":
                    return stripe.create(kind, params)
                return self._list(kind, params)
            if path.startswith(prefix + "/"):
                object_id, _, nested = path[len(prefix) + 1 :].partition("/")
                if nested:  # a nested list (a customer's cards, a product's features)
                    if method != "GET" or "/" in nested:
                        break
                    stripe.get(kind, object_id)
                    found = []
                    if (kind, nested) == ("customer", "payment_methods"):
                        found = [m for m in stripe.all("payment_method").values()
                                 if m["customer"] == object_id]  # fmt: skip
                    return {"object": "list", "url": f"/v1/{path}", "has_more": False,
                            "data": found}  # fmt: skip
                if method == "GET":
                    return stripe.get(kind, object_id)
                if method == "POST":
                    return stripe.update(kind, object_id, params)
                if method == "DELETE" and kind == "subscription":
                    return stripe.cancel_subscription(object_id)
                break
        raise StripeError(404, f"Unrecognized request URL ({method}: /v1/{path})")

    def _list(self, kind, params):
        limit = int(params.get("limit", 10))
        found = [
            o for o in self.stripe.all(kind).values()
            if all(str(o.get(k)) == v for k, v in params.items()
                   if k not in ("limit", "starting_after", "expand"))
        ]  # fmt: skip
        found.sort(key=lambda o: o["created"], reverse=True)
        after = params.get("starting_after")
        if after:
            ids = [o["id"] for o in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        return {
            "object": "list",
            "url": f"/v1/{kind}s",
            "has_more": len(found) > limit,
            "data": found[:limit],
        }

    def control(self, path, params):
        """What happens outside the API: `subscriptions/<id>/renew`, `.../fail`,
        `invoices/<id>/pay`, `charges/<id>/dispute`, `disputes/<id>/close`,
        `checkout_sessions/<id>/pay|expire|fail_async`, `lose_next_answer` (the next API
        write takes effect, then answers 500: a caller cannot tell whether it did)."""
        if path == "lose_next_answer":
            self.stripe.lose_next_answer = True
            return {"lose_next_answer": True}
        kind, _, rest = path.partition("/")
        object_id, _, action = rest.partition("/")
        actions = {
            ("subscriptions", "renew"): lambda: self.stripe.renew(object_id),
            ("subscriptions", "fail"): lambda: self.stripe.renew(object_id, succeeded=False),
            ("invoices", "pay"): lambda: self.stripe.retry_invoice(object_id),
            ("charges", "dispute"): lambda: self.stripe.dispute(
                object_id,
                amount=params.get("amount"),
                status=params.get("status", "needs_response"),
            ),
            ("disputes", "close"): lambda: self.stripe.close_dispute(
                object_id, params.get("status", "won")
            ),
            ("checkout_sessions", "pay"): lambda: self.stripe.pay(
                object_id, card=params.get("card", "4242")
            ),
            ("checkout_sessions", "expire"): lambda: self.stripe.expire_session(object_id),
            ("checkout_sessions", "fail_async"): lambda: self.stripe.fail_async(object_id),
        }
        action = actions.get((kind, action))
        if action is None:
            raise missing("control", path)
        return action()

    def pay_page(self, start_response, method, session_id, form):
        stripe = self.stripe
        with stripe.lock:
            session = stripe.get("checkout.session", session_id)
            price = stripe.get("price", session["line_items_offline"][0]["price"])
            product = stripe.get("product", price["product"])
        if method == "POST":
            if form.get("action") == "cancel":
                return self._redirect(start_response, session["cancel_url"])
            stripe.run(stripe.pay, session_id, card=form.get("card", "4242"))
            url = (session["success_url"] or "/").replace("{CHECKOUT_SESSION_ID}", session_id)
            return self._redirect(start_response, url)
        amount = f"{session['amount_total'] / 100:,.2f} {session['currency'].upper()}"
        every = f" every {price['recurring']['interval']}" if price.get("recurring") else ""
        if session["status"] != "open":
            return self._html(start_response, 410, "Already paid",
                              "<p>This checkout is complete.</p>")  # fmt: skip
        body = f"""
<p class="mode">Offline Stripe · test mode · no real money moves</p>
<h1>{html.escape(product["name"])}</h1>
<p class="amount">{html.escape(amount)}{every}</p>
<form method="post">
  <label for="card">Card</label>
  <select id="card" name="card">
    <option value="4242">Visa ending 4242 (succeeds)</option>
    <option value="0002">Visa ending 0002 (saved; later off-session charges decline)</option>
  </select>
  <button type="submit" name="action" value="pay" id="pay">Pay {html.escape(amount)}</button>
  <button type="submit" name="action" value="cancel" class="secondary">Cancel</button>
</form>"""
        return self._html(start_response, 200, f"Pay {product['name']}", body)

    @staticmethod
    def _json(start_response, status, body):
        data = json.dumps(body).encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data))),
             ("Request-Id", f"req_{secrets.token_hex(8)}"), ("Stripe-Version", API_VERSION)],
        )  # fmt: skip
        return [data]

    @staticmethod
    def _redirect(start_response, url):
        start_response("303 See Other", [("Location", url), ("Content-Length", "0")])
        return [b""]

    @staticmethod
    def _html(start_response, status, title, body):
        page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title><style>
body{{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem;
color:#1a1f36}}
.mode{{background:#fff4e5;color:#8a4b00;padding:.4rem .6rem;border-radius:4px;font-size:.85rem}}
.amount{{font-size:1.6rem;font-weight:600}} label{{display:block;margin:.5rem 0 .2rem}}
select,button{{font:inherit;padding:.55rem;width:100%;margin-bottom:.6rem}}
button{{background:#635bff;color:#fff;border:0;border-radius:6px;cursor:pointer}}
button.secondary{{background:#e3e8ee;color:#1a1f36}}</style></head><body>{body}</body></html>"""
        data = page.encode()
        start_response(
            f"{status} {'OK' if status < 400 else 'Error'}",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(len(data)))],
        )
        return [data]


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):
        logger.debug(format, *args)


def serve(stripe, *, host="127.0.0.1", port=0):
    """Start serving `stripe` on a thread; returns the server (`server.url`, `.shutdown()`)."""
    server = make_server(host, port, OfflineStripeApp(stripe), _ThreadingServer, _QuietHandler)
    server.url = f"http://{host}:{server.server_port}"
    stripe._base_url = server.url
    threading.Thread(target=server.serve_forever, daemon=True, name="offline-stripe").start()
    return server
