"""The seller JSON API under /api/v1, described by /api/v1/openapi.json."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

# The modules register their routes on `bp`.
from api import openapi, views  # noqa: E402, F401
