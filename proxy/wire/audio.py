"""`POST /v1/audio/transcriptions`: the multipart form validated in place, as OpenAI checks it.

The form is read once into one buffer (bounded by the size limit) and parsed without copying the
file; the backend gets the same bytes, with only `model` (alias → served name) and, for the
formats SGLang cannot render (srt, vtt), `response_format` spliced to `verbose_json`, which the
gateway then renders itself (`proxy.wire.transcripts`).
"""

from __future__ import annotations

from typing import Literal, get_args

import msgspec

from warmgate.proxy.errors import InvalidRequest, PayloadTooLarge
from warmgate.proxy.wire.multipart import Part, boundary_of, parse_parts, splice
from warmgate.proxy.wire.rejection import wrong_content_type

# OpenAI's upload limit for audio files.
MAX_AUDIO_BYTES = 25 * 1024 * 1024

AudioResponseFormat = Literal["json", "text", "srt", "verbose_json", "vtt", "diarized_json"]
RESPONSE_FORMATS: tuple[str, ...] = get_args(AudioResponseFormat)
# What the backend is asked for, per format the client asked for.
UPSTREAM_FORMAT = {"srt": "verbose_json", "vtt": "verbose_json"}
SUPPORTED_EXTENSIONS = ("flac", "m4a", "mp3", "mp4", "mpeg", "mpga", "oga", "ogg", "wav", "webm")
GRANULARITIES = ("word", "segment")
# Magic numbers of the supported containers: (offset, bytes, format).
_MAGIC: tuple[tuple[int, bytes, str], ...] = (
    (0, b"RIFF", "wav"),
    (0, b"fLaC", "flac"),
    (0, b"OggS", "ogg"),
    (0, b"ID3", "mp3"),
    (0, b"\xff\xfb", "mp3"),
    (0, b"\xff\xf3", "mp3"),
    (0, b"\xff\xf2", "mp3"),
    (4, b"ftyp", "mp4"),
    (0, b"\x1a\x45\xdf\xa3", "webm"),
)
_AUDIO_TYPES = {
    "audio/wav": "wav",
    "audio/x-wav": "wav",
    "audio/wave": "wav",
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/flac": "flac",
    "audio/ogg": "ogg",
    "audio/webm": "webm",
    "audio/mp4": "m4a",
    "audio/m4a": "m4a",
    "video/mp4": "mp4",
}


class CreateTranscriptionRequest(msgspec.Struct, frozen=True, kw_only=True):
    """The validated form; `file` is the part (a range of the body), never a copy."""

    file: Part
    audio_format: str
    model: str
    language: str | None = None
    prompt: str | None = None
    response_format: AudioResponseFormat = "json"
    temperature: float | None = None
    timestamp_granularities: tuple[str, ...] = ()
    model_part: Part | None = None
    format_part: Part | None = None

    @property
    def upstream_format(self) -> str:
        return UPSTREAM_FORMAT.get(self.response_format, self.response_format)

    def upstream_body(self, body: bytes | bytearray, served_model: str) -> bytes | bytearray:
        """The form for the backend: the original bytes with model/format spliced if needed
        (a `bytearray` is edited in place)."""
        edits: list[tuple[Part, bytes]] = []
        if self.model_part is not None and served_model != self.model:
            edits.append((self.model_part, served_model.encode()))
        if self.format_part is not None and self.upstream_format != self.response_format:
            edits.append((self.format_part, self.upstream_format.encode()))
        return splice(body, edits)


def detect_format(
    filename: str | None, content_type: str | None, head: bytes | bytearray
) -> str | None:
    """The audio format from the file name, then the first bytes, then the part's type."""
    if filename and "." in filename:
        extension = filename.rsplit(".", 1)[1].lower()
        if extension in SUPPORTED_EXTENSIONS:
            return extension
    for offset, magic, name in _MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    if content_type:
        return _AUDIO_TYPES.get(content_type.split(";", 1)[0].strip())
    return None


def _text(body: bytes | bytearray, part: Part) -> str:
    try:
        return body[part.start : part.end].decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(
            f"Invalid '{part.name}': expected UTF-8 text.", param=part.name, code="invalid_type"
        ) from None


def _field_name(name: str) -> str:
    return name.removesuffix("[]")


def _file(
    parts: dict[str, list[Part]], body: bytes | bytearray, max_file_bytes: int
) -> tuple[Part, str]:
    files = parts.get("file")
    if not files:
        raise InvalidRequest(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    part = files[-1]
    if part.filename is None:
        raise InvalidRequest(
            "Invalid 'file': expected a file upload, got a text field.",
            param="file",
            code="invalid_type",
        )
    if part.size == 0:
        raise InvalidRequest("The audio file is empty.", param="file", code="empty_file")
    if part.size > max_file_bytes:
        raise PayloadTooLarge(
            f"Maximum content size limit ({max_file_bytes} bytes) exceeded "
            f"({part.size} bytes read).",
            param="file",
        )
    audio_format = detect_format(
        part.filename, part.content_type, body[part.start : part.start + 12]
    )
    if audio_format is None:
        raise InvalidRequest(
            f"Invalid file format. Supported formats: {list(SUPPORTED_EXTENSIONS)}",
            param="file",
            code="invalid_value",
        )
    return part, audio_format


def _temperature(value: str) -> float:
    try:
        temperature = float(value)
    except ValueError:
        raise InvalidRequest(
            "Invalid type for 'temperature': expected a number.",
            param="temperature",
            code="invalid_type",
        ) from None
    if not 0.0 <= temperature <= 1.0:
        raise InvalidRequest(
            "Invalid 'temperature': expected a value between 0 and 1.",
            param="temperature",
            code="decimal_above_max_value" if temperature > 1 else "decimal_below_min_value",
        )
    return temperature


def _stream(value: str) -> bool:
    if value.lower() in ("true", "1"):
        return True
    if value.lower() in ("false", "0", ""):
        return False
    raise InvalidRequest(
        "Invalid type for 'stream': expected a boolean.", param="stream", code="invalid_type"
    )


def decode_transcription(
    body: bytes | bytearray, content_type: str | None, *, max_file_bytes: int = MAX_AUDIO_BYTES
) -> CreateTranscriptionRequest:
    """Validate a transcription form; raise the OpenAI error naming the field."""
    boundary = boundary_of(content_type)
    if boundary is None:
        raise wrong_content_type(content_type, "multipart/form-data with a boundary")
    by_name: dict[str, list[Part]] = {}
    for part in parse_parts(body, boundary):
        by_name.setdefault(_field_name(part.name), []).append(part)
    file, audio_format = _file(by_name, body, max_file_bytes)
    text_fields = {
        name: _text(body, parts[-1]) for name, parts in by_name.items() if name != "file"
    }
    model = text_fields.get("model")
    if not model:
        raise InvalidRequest(
            "Missing required parameter: 'model'.",
            param="model",
            code="missing_required_parameter",
        )
    response_format = text_fields.get("response_format", "json") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise InvalidRequest(
            f"Invalid value for 'response_format': {response_format!r}. Supported values are: "
            f"{', '.join(repr(name) for name in RESPONSE_FORMATS)}.",
            param="response_format",
            code="invalid_value",
        )
    granularities = tuple(_text(body, part) for part in by_name.get("timestamp_granularities", []))
    for granularity in granularities:
        if granularity not in GRANULARITIES:
            raise InvalidRequest(
                f"Invalid value for 'timestamp_granularities': {granularity!r}. Supported "
                "values are: 'word' and 'segment'.",
                param="timestamp_granularities",
                code="invalid_value",
            )
    if granularities and response_format != "verbose_json":
        raise InvalidRequest(
            "timestamp_granularities is only supported with response_format 'verbose_json'.",
            param="timestamp_granularities",
            code="invalid_value",
        )
    if _stream(text_fields.get("stream", "false")):
        raise InvalidRequest(
            "Streaming is not supported for this model: its backends answer whole transcripts.",
            param="stream",
            code="unsupported_value",
        )
    temperature = text_fields.get("temperature")
    return CreateTranscriptionRequest(
        file=file,
        audio_format=audio_format,
        model=model,
        language=text_fields.get("language"),
        prompt=text_fields.get("prompt"),
        response_format=response_format,  # type: ignore[arg-type]  # checked against the enum
        temperature=_temperature(temperature) if temperature is not None else None,
        timestamp_granularities=granularities,
        model_part=by_name["model"][-1],
        format_part=by_name["response_format"][-1] if "response_format" in by_name else None,
    )
