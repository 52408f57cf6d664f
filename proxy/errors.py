"""The gateway's error hierarchy: each class knows its HTTP status, OpenAI `type` and `code`.

An error renders itself, here and nowhere else, as OpenAI's body, `{"error": {"message",
"type", "param", "code"}}` (`to_json`), and as the server-sent event that ends a stream which
broke off (`to_event`); `pipeline.replies.error_parts` makes either an HTTP answer. Messages
never carry a secret: neither a user key nor a backend key.
"""

from __future__ import annotations

from typing import ClassVar

import msgspec


class ErrorObject(msgspec.Struct, omit_defaults=False):
    message: str
    type: str
    param: str | None = None
    code: str | None = None


class ErrorResponse(msgspec.Struct):
    error: ErrorObject


_encoder = msgspec.json.Encoder()


class GatewayError(Exception):
    """Base class: an error the client sees in OpenAI's shape."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.instance_code = code if code is not None else self.code
        self.headers = headers or {}

    def body(self) -> ErrorResponse:
        return ErrorResponse(
            ErrorObject(
                message=self.message, type=self.type, param=self.param, code=self.instance_code
            )
        )

    def to_json(self) -> bytes:
        return _encoder.encode(self.body())

    def to_event(self) -> bytes:
        """The error as one `data:` event of a chat or completion stream (the SDKs raise it)."""
        return b"data: " + self.to_json() + b"\n\n"


class InvalidRequest(GatewayError):
    status = 400
    type = "invalid_request_error"


class InvalidApiKey(GatewayError):
    status = 401
    type = "invalid_request_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "invalid_request_error"
    code = "model_not_allowed"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"

    @classmethod
    def named(cls, model: str) -> ModelNotFound:
        """The one answer for a model that does not exist and for one the key may not use, as
        OpenAI words it: a key learns nothing of models it cannot use, nor of an alias's
        target."""
        return cls(
            f"The model `{model}` does not exist or you do not have access to it.", param="model"
        )


class MethodNotAllowed(GatewayError):
    status = 405
    type = "invalid_request_error"
    code = "method_not_allowed"


class RequestTimeout(GatewayError):
    """The client did not send its request's headers in time."""

    status = 408
    type = "invalid_request_error"
    code = "request_timeout"


class PayloadTooLarge(GatewayError):
    status = 413
    type = "invalid_request_error"
    code = "request_too_large"


class UriTooLong(GatewayError):
    status = 414
    type = "invalid_request_error"
    code = "uri_too_long"


class HeadersTooLarge(GatewayError):
    """The request's header fields are too many or too large in total."""

    status = 431
    type = "invalid_request_error"
    code = "request_header_fields_too_large"


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        limit: str = "requests",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        # The limit that refused the request, as the metrics count 429s: the limiter names
        # it (`rpm`, `concurrency`); `requests` where it does not say.
        self.limit = limit


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"
    limit = "quota"


class BackendError(GatewayError):
    """The backend failed (5xx, broken stream, refused our backend key): our 502."""

    status = 502
    type = "server_error"
    code = "backend_error"


class AnswerTooLarge(BackendError):
    """The backend's answer is larger than the gateway holds in memory."""


class BackendUnreachable(BackendError):
    """No connection to the backend could be made: it cannot have started the work."""

    code = "backend_unreachable"


class StreamInterrupted(BackendError):
    """The backend's answer broke off after it had begun."""

    code = "stream_interrupted"


class BackendTimeout(GatewayError):
    status = 504
    type = "server_error"
    code = "backend_timeout"


class NoHealthyBackend(GatewayError):
    status = 503
    type = "server_error"
    code = "no_healthy_backend"


class ShuttingDown(GatewayError):
    status = 503
    type = "server_error"
    code = "shutting_down"
