"""The billing rule, as a pure function.

Billed when the backend produced an answer: a completed response, or a stream that delivered at
least one token before the client left. Never billed for the gateway's own 4xx (validation, keys,
limits), for backend failures (5xx, refused, timed out, a stream cut by the backend), or when no
backend was available.
"""

from __future__ import annotations

import enum


class BilledReason(enum.StrEnum):
    COMPLETED = "completed"  # the whole answer reached the client
    PARTIAL_STREAM = "partial_stream"  # the client left a stream after >= 1 token
    CLIENT_ERROR = "client_error"  # a 4xx: ours (validation, auth, limits) or the backend's
    CANCELLED_BEFORE_ANSWER = "cancelled_before_answer"  # the client left before any token
    NO_BACKEND = "no_backend"  # no healthy backend for the model
    BACKEND_ERROR = "backend_error"  # 5xx, refused, timed out, or a stream cut by the backend
    NOT_BILLABLE = "not_billable"  # bookkeeping, not generation: retrieving a stored response


def billing_decision(  # noqa: PLR0911  # one return per outcome reads as the rule
    *,
    billable: bool = True,
    status: int,
    completed: bool,
    delivered_tokens: int,
    cancelled: bool,
    error_code: str | None = None,
) -> tuple[bool, BilledReason]:
    """(billed, why) for a finished request.

    status: the HTTP status sent to the client (or that would have been sent, if it left first).
    completed: the backend's whole answer reached the client (a body, or a stream to `[DONE]`).
    delivered_tokens: tokens (content chunks) of a stream that reached the client.
    cancelled: the client went away before the answer was complete.
    error_code: the gateway's error code when it answered with an error.
    billable: the endpoint generates (False: retrieving or cancelling a stored response).
    """
    if not billable:
        return False, BilledReason.NOT_BILLABLE
    ok = 200 <= status < 300
    if ok and completed and not cancelled:
        return True, BilledReason.COMPLETED
    if ok and cancelled and delivered_tokens > 0:
        return True, BilledReason.PARTIAL_STREAM
    if cancelled:
        return False, BilledReason.CANCELLED_BEFORE_ANSWER
    if 400 <= status < 500:
        return False, BilledReason.CLIENT_ERROR
    if error_code == "no_healthy_backend":
        return False, BilledReason.NO_BACKEND
    return False, BilledReason.BACKEND_ERROR
