"""`python tests/localstripe_server.py PORT STATE`: localstripe on 127.0.0.1:PORT, from no state, keeping its state
in the file STATE (its own start listens on every interface and shares /tmp/localstripe.pickle with every run)."""

import logging
import pickle
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources


def accept_allowed_payment_method_types() -> None:
    """localstripe predates Stripe's API version 2026-09-30, which takes the payment method types of a PaymentIntent or
    a SetupIntent as allowed_payment_method_types only (payment_method_types is read-only there): both learn it."""

    def learning(resource):
        create = resource._api_create.__func__

        def _api_create(cls, allowed_payment_method_types=None, **data):
            if allowed_payment_method_types is not None:
                data["payment_method_types"] = allowed_payment_method_types
            return create(cls, **data)

        return classmethod(_api_create)

    for resource in (resources.PaymentIntent, resources.SetupIntent):
        resource._api_create = learning(resource)


def set_up_payment_methods_as_stripe_does() -> None:
    """Stripe attaches the PaymentMethod of a succeeded SetupIntent to the SetupIntent's customer, and a card whose bank
    wants 3-D Secure for one-off payments (4000002500003155), once set up so, is charged off-session without asking
    again. localstripe does neither: its confirm route (bound when `server` is imported) learns both."""
    confirm = resources.SetupIntent._api_confirm
    authenticates = resources.PaymentMethod._requires_authentication

    def confirm_and_attach(**data):
        setup_intent = confirm(**data)
        if setup_intent.status == "succeeded" and setup_intent.customer:
            payment_method = resources.PaymentMethod._api_retrieve(setup_intent.payment_method)
            payment_method.customer = setup_intent.customer
            payment_method._set_up = True
        return setup_intent

    def _requires_authentication(self):
        set_up = getattr(self, "_set_up", False) and getattr(self, "_card_number", None) == "4000002500003155"
        return not set_up and authenticates(self)

    resources.PaymentMethod._requires_authentication = _requires_authentication
    resources.extra_apis[:] = [
        (method, url, confirm_and_attach if url == "/v1/setup_intents/{id}/confirm" else func)
        for method, url, func in resources.extra_apis
    ]


def serve(port: int, state: Path) -> None:
    accept_allowed_payment_method_types()
    set_up_payment_methods_as_stripe_does()
    from localstripe import server  # its routes are bound as it is imported: after the lessons above

    def dump_to_disk(store) -> None:
        with state.open("wb") as file:
            pickle.dump(store, file, protocol=pickle.HIGHEST_PROTOCOL)

    resources.Store.dump_to_disk = dump_to_disk
    # Its log says which webhooks the app answered 2xx: the tests read it.
    log = logging.getLogger("aiohttp.access")
    log.setLevel(logging.INFO)
    log.addHandler(logging.StreamHandler(sys.stdout))
    web.run_app(server.app, host="127.0.0.1", port=port, access_log=log, print=None)


if __name__ == "__main__":
    serve(int(sys.argv[1]), Path(sys.argv[2]))
