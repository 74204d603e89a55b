"""``POST /rlm-router/feedback`` on the LiteLLM proxy: apps report how good an answer was.

Body (JSON)::

    {"decision_id": "<x-rlm-router-decision-id of the response>", "quality": 0.0..1.0,
     "comment": "optional free text"}

Answers 200 ``{"recorded": true, "decision_id": ..., "quality": ...}``; 400 with a message
naming the field for a malformed body; 404 for a decision id this proxy did not issue (it
remembers its last 65,536 decisions since it started); 503 when telemetry is off
(nothing would record it). The body is read as JSON whatever its ``Content-Type`` says (or
when it has none, as ``curl -d`` sends it).
The report goes to ``Telemetry.record_feedback`` (a ``rlm_router.feedback`` span, a metric,
and a line in the feedback file), where ``rlm-router train`` joins it by decision id.

Authentication is the proxy's own (``user_api_key_auth``): the master key works; a virtual
key needs the path in its ``allowed_routes`` (LiteLLM lets non-admin keys reach only the
routes it knows, and it does not know this one).

The route is added to the proxy's FastAPI ``app`` at run time (``install``), which FastAPI
supports; the proxy has no catch-all route that would shadow it.
"""

import json
import logging
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from rlm_router.rlm_core.errors import RequestError
from rlm_router.router.plugin.running_proxy import running_proxy_app

if TYPE_CHECKING:
    from fastapi import APIRouter, FastAPI, Request
    from fastapi.responses import JSONResponse

    from rlm_router.telemetry import Telemetry

log = logging.getLogger(__name__)

FEEDBACK_PATH: Final = "/rlm-router/feedback"
MAX_COMMENT_CHARS: Final = 4000
MAX_BODY_BYTES: Final = 64 * 1024
_INSTALLED_FLAG: Final = "rlm_router_feedback_installed"

TelemetrySource = Callable[[], "Telemetry | None"]
# Whether this process issued a decision id (None: accept any id).
DecisionCheck = Callable[[str], bool]


class FeedbackInputError(RequestError):
    """A feedback body that cannot be recorded; the message names the field."""


def parse_feedback(raw: bytes) -> tuple[str, float, str | None]:
    """(decision_id, quality, comment) from a request body, or ``FeedbackInputError``."""
    if len(raw) > MAX_BODY_BYTES:
        raise FeedbackInputError(f"body is larger than {MAX_BODY_BYTES} bytes")
    try:
        body = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise FeedbackInputError(f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise FeedbackInputError(
            'body must be a JSON object like {"decision_id": "...", "quality": 0.8}'
        )
    unknown = sorted(set(body) - {"decision_id", "quality", "comment"})
    if unknown:
        raise FeedbackInputError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; "
            "expected decision_id, quality and optionally comment"
        )
    decision_id = body.get("decision_id")
    if not isinstance(decision_id, str) or not decision_id.strip():
        raise FeedbackInputError(
            "decision_id must be a non-empty string (the x-rlm-router-decision-id header of "
            "the response being rated)"
        )
    quality = body.get("quality")
    if isinstance(quality, bool) or not isinstance(quality, int | float):
        raise FeedbackInputError(f"quality must be a number in [0, 1], got {json.dumps(quality)}")
    if math.isnan(quality) or not 0.0 <= quality <= 1.0:
        raise FeedbackInputError(f"quality must be a number in [0, 1], got {quality!r}")
    comment = body.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            raise FeedbackInputError("comment must be a string when given")
        if len(comment) > MAX_COMMENT_CHARS:
            raise FeedbackInputError(f"comment is longer than {MAX_COMMENT_CHARS} characters")
    return decision_id.strip(), float(quality), comment


def feedback_router(
    telemetry: TelemetrySource,
    *,
    authenticate: bool = True,
    known: DecisionCheck | None = None,
) -> "APIRouter":
    """The FastAPI router serving ``POST /rlm-router/feedback``.

    ``authenticate`` puts the proxy's ``user_api_key_auth`` in front (always, in the proxy);
    without it the route is open, for apps that mount it on their own authenticated app.
    """
    from fastapi import APIRouter, Depends, Request
    from fastapi.responses import JSONResponse

    async def read_body(request: Request) -> None:
        # Read (and so cache) the raw body before LiteLLM's auth looks at it: for a form
        # Content-Type (``curl -d`` sends one) the auth parses the stream as a form, after
        # which the body could no longer be read (a 500).
        await request.body()

    dependencies = [Depends(read_body)]
    if authenticate:
        from litellm.proxy.auth.user_api_key_auth import user_api_key_auth

        dependencies.append(Depends(user_api_key_auth))
    router = APIRouter()

    @router.post(FEEDBACK_PATH, tags=["rlm-router"], dependencies=dependencies)
    async def record_feedback(request: Request) -> JSONResponse:
        """Record the outcome quality (0..1) of a routed request by its decision id."""
        return await handle_feedback(request, telemetry, known)

    return router


async def handle_feedback(
    request: "Request", telemetry: TelemetrySource, known: DecisionCheck | None = None
) -> "JSONResponse":
    """The endpoint's work, separate from routing and authentication."""
    from fastapi.responses import JSONResponse

    try:
        decision_id, quality, comment = parse_feedback(await request.body())
    except FeedbackInputError as exc:
        return _error(400, str(exc), "invalid_feedback")
    if known is not None and not known(decision_id):
        return _error(
            404,
            f"no decision {decision_id!r} was made by this proxy (use the "
            "x-rlm-router-decision-id header of a response it served)",
            "unknown_decision",
        )
    sink = telemetry()
    if sink is None:
        return _error(
            503,
            "telemetry is disabled in this proxy, so feedback cannot be recorded",
            "telemetry_disabled",
        )
    try:
        sink.record_feedback(decision_id, quality, source="http", comment=comment)
    except ValueError as exc:
        return _error(400, str(exc), "invalid_feedback")
    return JSONResponse({"recorded": True, "decision_id": decision_id, "quality": quality})


def install(app: "FastAPI", telemetry: TelemetrySource, known: DecisionCheck | None = None) -> bool:
    """Add the feedback route to ``app`` once; returns whether it was added now."""
    if getattr(app.state, _INSTALLED_FLAG, False):
        return False
    app.include_router(feedback_router(telemetry, known=known))
    setattr(app.state, _INSTALLED_FLAG, True)
    app.openapi_schema = None  # regenerate /openapi.json with the new route
    return True


def install_on_running_proxy(
    telemetry: TelemetrySource, known: DecisionCheck | None = None
) -> bool:
    """Add the route to the LiteLLM proxy's app if this process is the proxy.

    Does nothing (returns False) in library use: the proxy module is never imported here.
    """
    app = running_proxy_app()
    if app is None:
        return False
    try:
        return install(app, telemetry, known)
    except Exception:  # the proxy must serve even if the extra route cannot be added
        log.warning("rlm-router: could not add %s to the proxy", FEEDBACK_PATH, exc_info=True)
        return False


def _error(status: int, message: str, code: str) -> "JSONResponse":
    from fastapi.responses import JSONResponse

    return JSONResponse(
        {"error": {"message": f"rlm-router: {message}", "type": code, "code": status}},
        status_code=status,
    )
