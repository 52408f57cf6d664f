"""SGLang's error bodies: the flat OpenAI-serving shape, the auth shape, the in-stream shape."""

from __future__ import annotations

from http import HTTPStatus

import msgspec


class SimError(Exception):
    """An error answered with SGLang's flat body (serving_base.create_error_response)."""

    def __init__(self, message: str, status: int = 400, err_type: str = "BadRequestError") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.err_type = err_type

    def body(self) -> bytes:
        return flat_error(self.message, self.err_type, self.status)


def flat_error(message: str, err_type: str, code: int) -> bytes:
    """`{"object":"error","message","type","param":null,"code":<int>}` (protocol.ErrorResponse)."""
    return msgspec.json.encode(
        {"object": "error", "message": message, "type": err_type, "param": None, "code": code}
    )


def stream_error_event(message: str, status: int) -> bytes:
    """An error after the stream began: `data: {"error": {...}}` with the status's enum name."""
    name = HTTPStatus(status).name
    error = {"object": "error", "message": message, "type": name, "param": None, "code": status}
    return b"data: " + msgspec.json.encode({"error": error}) + b"\n\n"


UNAUTHORIZED_BODY = b'{"error":"Unauthorized"}'
