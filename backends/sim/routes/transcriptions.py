"""POST /v1/audio/transcriptions as SGLang's http_server answers it (Whisper-style ASR).

Any audio file is "transcribed" into seeded words (the same file gives the same text); the
duration comes from a WAV header when there is one, else from the byte count. SGLang renders
only json, text and verbose_json, and its verbose segments carry just id/start/end/text.
"""

from __future__ import annotations

import math
import struct
import zlib
from email.message import Message
from email.parser import BytesParser
from email.policy import HTTP

from aiohttp import web

from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import encode
from warmgate.backends.sim.writer import Writer

FORMATS = ("json", "text", "verbose_json")
WORDS_PER_SECOND = 2.5
SEGMENT_WORDS = 12
# Bytes per second assumed for a file without a WAV header (128 kbit/s compressed audio).
COMPRESSED_BYTES_PER_S = 16_000


def _form(content_type: str, body: bytes) -> dict[str, Message]:
    head = b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n"
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    if not message.is_multipart():
        raise SimError("There was an error parsing the body", 400, "Bad Request")
    fields: dict[str, Message] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if isinstance(name, str):
            fields[name] = part
    return fields


def _text(fields: dict[str, Message], name: str, default: str | None = None) -> str | None:
    part = fields.get(name)
    if part is None:
        return default
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8") if isinstance(payload, bytes) else default


def duration_s(audio: bytes) -> float:
    """A WAV file's length from its header (byte rate at offset 28), else a bitrate guess."""
    if audio[:4] == b"RIFF" and audio[8:12] == b"WAVE" and len(audio) >= 44:
        byte_rate: int = struct.unpack_from("<I", audio, 28)[0]
        if byte_rate:
            return max(0.0, (len(audio) - 44) / byte_rate)
    return len(audio) / COMPRESSED_BYTES_PER_S


async def transcriptions(request: web.Request) -> web.Response:
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica, require_json=False)
        fields = _form(request.headers.get("Content-Type", ""), body)
        file_part = fields.get("file")
        audio = file_part.get_payload(decode=True) if file_part is not None else None
        if not isinstance(audio, bytes):
            raise SimError("Field required: file", 400, "Bad Request")
        response_format = _text(fields, "response_format", "json") or "json"
        model = _text(fields, "model", "default") or "default"
        intake.check_model(model, replica.config)
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    if response_format not in FORMATS:
        only = "Only 'json', 'text', and 'verbose_json' formats supported"
        message = {"error": {"message": only}}
        return intake.json_response(encode(message), 400)
    seconds = duration_s(audio)
    words = Writer(zlib.crc32(audio) ^ replica.config.seed).words(
        max(1, round(seconds * WORDS_PER_SECOND))
    )
    text = "".join(words).strip()
    usage = {"type": "duration", "seconds": math.ceil(seconds)}
    replica.telemetry.requests_received += 1
    if response_format == "text":
        return web.Response(text=text, content_type="text/plain")
    if response_format == "json":
        return intake.json_response(encode({"text": text, "usage": usage}))
    segments: list[dict[str, object]] = []
    per_word = seconds / len(words)
    for index in range(0, len(words), SEGMENT_WORDS):
        chunk = words[index : index + SEGMENT_WORDS]
        segments.append({"id": len(segments), "start": round(index * per_word, 3),
                         "end": round((index + len(chunk)) * per_word, 3),
                         "text": "".join(chunk)})  # fmt: skip
    verbose = {"task": "transcribe", "language": _text(fields, "language"), "duration": seconds,
               "text": text, "segments": segments, "usage": usage}  # fmt: skip
    return intake.json_response(encode(verbose))
