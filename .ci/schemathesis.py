"""schemathesis against the live API: the app on a free port over DATABASE_URL and REDIS_URL, a seeded seller and
product, every check, the stateful phase following the document's links; exit 1 on any finding.

Run from the repository root with the venv's python: `.venv/bin/python .ci/schemathesis.py [schemathesis options]`.
The tables are emptied first (the suite's database is fine: each test empties them too).
"""

import datetime as dt
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# Cases per operation and phase: about two minutes in all, most of it the coverage phase.
MAX_EXAMPLES = os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "10")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    port = free_port()
    os.environ["PUBLIC_URL"] = f"http://127.0.0.1:{port}"
    from werkzeug.serving import make_server

    from app import create_app
    from billing.sellers import create_seller
    from migrations import upgrade
    from models import MODELS, Product, db
    from runtime import redis_connection

    app = create_app()
    with db.connection_context():
        upgrade()
        for model in reversed(MODELS):
            model.delete().execute()
        seller, key = create_seller("Schemathesis Shop", "shop@example.com", dt.datetime.now(dt.UTC))
        Product.create(seller=seller, name="Python course", notification_email="sales@example.com")
    redis_connection().flushdb()

    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        # schemathesis' own process: its exit code is the verdict, and it ends before the server does.
        return subprocess.run(  # noqa: S603 (its own arguments and the runner's)
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"http://127.0.0.1:{port}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                "all",
                "--phases",
                "examples,coverage,fuzzing,stateful",
                "--max-examples",
                MAX_EXAMPLES,
                "--generation-deterministic",
                # One worker: with several, hypothesis' threads call ast.parse at once, which CPython 3.11.7 races
                # on ("SystemError: AST constructor recursion depth mismatch", gh-106905, fixed in later releases).
                "--workers",
                "1",
                "--no-color",
                *sys.argv[1:],
            ],
            check=False,
        ).returncode
    finally:
        server.shutdown()
        thread.join()


if __name__ == "__main__":
    sys.exit(main())
