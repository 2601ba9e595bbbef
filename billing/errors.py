"""The named ways a rule says no. Adapters turn them into HTTP statuses, Slack messages or pages."""


class BillingError(Exception):
    """A request the rules refuse; `message` is meant for the person who asked."""

    code = "refused"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class Refused(BillingError):
    """The order exists and is yours, but the rule does not allow this now."""


class InvalidInput(BillingError):
    """A field is missing or malformed."""

    code = "invalid"

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


class NotFound(BillingError):
    """What the request names is not the seller's (or does not exist: the two are never told apart)."""

    code = "not_found"


class OrderNotFound(NotFound):
    code = "unknown_order"
