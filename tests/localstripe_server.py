"""`python tests/localstripe_server.py PORT STATE`: localstripe on 127.0.0.1:PORT, from no state, keeping its state
in the file STATE (its own start listens on every interface and shares /tmp/localstripe.pickle with every run)."""

import logging
import pickle
import sys
from pathlib import Path

from aiohttp import web
from localstripe import resources, server


def accept_allowed_payment_method_types() -> None:
    """localstripe predates Stripe's API version 2026-09-30, which takes a PaymentIntent's payment method types as
    allowed_payment_method_types only (payment_method_types is read-only there): it learns the new name."""
    create = resources.PaymentIntent._api_create.__func__

    def _api_create(cls, allowed_payment_method_types=None, **data):
        if allowed_payment_method_types is not None:
            data["payment_method_types"] = allowed_payment_method_types
        return create(cls, **data)

    resources.PaymentIntent._api_create = classmethod(_api_create)


def serve(port: int, state: Path) -> None:
    accept_allowed_payment_method_types()

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
