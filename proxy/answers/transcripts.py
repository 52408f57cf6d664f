"""Transcription answers in the shape and format the client asked for.

SGLang renders json, text and verbose_json, and its verbose segments carry only
`id, start, end, text` (language and duration may be null). The gateway asks it for
verbose_json whenever the client wants srt or vtt, renders those here, and fills a verbose
answer's missing required fields so it matches OpenAI's `CreateTranscriptionResponseVerboseJson`.
"""

from __future__ import annotations

import msgspec

from warmgate.proxy.media import JSON, SUBRIP, TEXT, WEBVTT

TEXT_TYPES = {"text": TEXT, "srt": SUBRIP, "vtt": WEBVTT}


class TranscriptionWord(msgspec.Struct, kw_only=True):
    word: str
    start: float
    end: float


class TranscriptionSegment(msgspec.Struct, kw_only=True):
    id: int
    start: float
    end: float
    text: str
    seek: int = 0
    tokens: list[int] = msgspec.field(default_factory=list)
    temperature: float = 0.0
    avg_logprob: float = 0.0
    compression_ratio: float = 0.0
    no_speech_prob: float = 0.0


class TranscriptTextUsageDuration(msgspec.Struct, kw_only=True):
    seconds: float
    type: str = "duration"


class CreateTranscriptionResponseVerboseJson(msgspec.Struct, kw_only=True, omit_defaults=True):
    text: str
    language: str | None = None
    duration: float | None = None
    segments: list[TranscriptionSegment] | None = None
    words: list[TranscriptionWord] | None = None
    usage: TranscriptTextUsageDuration | None = None


_verbose = msgspec.json.Decoder(CreateTranscriptionResponseVerboseJson)
_encoder = msgspec.json.Encoder()


class TranscriptError(ValueError):
    """The backend's answer is not a transcript."""


def read_verbose(payload: bytes) -> CreateTranscriptionResponseVerboseJson:
    try:
        return _verbose.decode(payload)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise TranscriptError(str(exc)) from None


def _segments(verbose: CreateTranscriptionResponseVerboseJson) -> list[TranscriptionSegment]:
    if verbose.segments:
        return verbose.segments
    duration = verbose.duration or 0.0
    return [TranscriptionSegment(id=0, start=0.0, end=duration, text=verbose.text.strip())]


def normalize_verbose(payload: bytes, *, language: str | None, temperature: float | None) -> bytes:
    """A backend's verbose_json with every field OpenAI's schema requires."""
    verbose = read_verbose(payload)
    segments = _segments(verbose)
    duration = verbose.duration
    if duration is None:
        duration = max((segment.end for segment in segments), default=0.0)
    for segment in segments:
        if temperature is not None and segment.temperature == 0.0:
            segment.temperature = temperature
    fixed = CreateTranscriptionResponseVerboseJson(
        text=verbose.text,
        language=verbose.language or language or "unknown",
        duration=duration,
        segments=segments,
        words=verbose.words,
        usage=verbose.usage,
    )
    return _encoder.encode(fixed)


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def render_srt(payload: bytes) -> bytes:
    """SubRip cues, numbered from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`."""
    cues = [
        f"{number}\n{_clock(segment.start, ',')} --> {_clock(segment.end, ',')}\n"
        f"{segment.text.strip()}\n"
        for number, segment in enumerate(_segments(read_verbose(payload)), start=1)
    ]
    return "\n".join(cues).encode() + b"\n"


def render_vtt(payload: bytes) -> bytes:
    """WebVTT: the header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues."""
    cues = [
        f"{_clock(segment.start, '.')} --> {_clock(segment.end, '.')}\n{segment.text.strip()}\n"
        for segment in _segments(read_verbose(payload))
    ]
    return ("WEBVTT\n\n" + "\n".join(cues)).encode()


def render(
    response_format: str,
    payload: bytes,
    *,
    language: str | None = None,
    temperature: float | None = None,
) -> tuple[bytes, str]:
    """(body, content type) for the client from the backend's answer to the upstream format."""
    if response_format == "srt":
        return render_srt(payload), TEXT_TYPES["srt"]
    if response_format == "vtt":
        return render_vtt(payload), TEXT_TYPES["vtt"]
    if response_format == "verbose_json":
        return normalize_verbose(payload, language=language, temperature=temperature), JSON
    if response_format == "text":
        return payload, TEXT_TYPES["text"]
    return payload, JSON
