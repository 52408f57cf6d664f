"""Transcripts rendered as srt/vtt and verbose answers completed to OpenAI's shape."""

from __future__ import annotations

import json

import pytest

from warmgate.proxy.answers.transcripts import (
    TranscriptError,
    normalize_verbose,
    render,
    render_srt,
    render_vtt,
)

SGLANG_VERBOSE = json.dumps({
    "task": "transcribe", "language": None, "duration": None, "text": "Hello there. Bye.",
    "segments": [{"id": 0, "start": 0.0, "end": 1.2345, "text": " Hello there."},
                 {"id": 1, "start": 3661.5, "end": 3662.0, "text": " Bye."}],
    "usage": {"type": "duration", "seconds": 3663},
}).encode()  # fmt: skip


def test_srt_numbers_cues_and_uses_commas() -> None:
    assert render_srt(SGLANG_VERBOSE).decode() == (
        "1\n00:00:00,000 --> 00:00:01,234\nHello there.\n\n"
        "2\n01:01:01,500 --> 01:01:02,000\nBye.\n\n"
    )


def test_vtt_has_its_header_and_uses_dots() -> None:
    assert render_vtt(SGLANG_VERBOSE).decode() == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:01.234\nHello there.\n\n"
        "01:01:01.500 --> 01:01:02.000\nBye.\n"
    )


def test_a_verbose_answer_gets_every_required_segment_field() -> None:
    fixed = json.loads(normalize_verbose(SGLANG_VERBOSE, language="en", temperature=0.3))
    assert fixed["language"] == "en"
    assert fixed["duration"] == 3662.0
    segment = fixed["segments"][0]
    required = {"id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
                "compression_ratio", "no_speech_prob"}  # fmt: skip
    assert required <= set(segment)
    assert segment["temperature"] == 0.3
    assert fixed["usage"] == {"seconds": 3663, "type": "duration"}


def test_an_answer_without_segments_becomes_one_segment() -> None:
    plain = json.dumps({"text": " All of it.", "duration": 2.5}).encode()
    assert render_srt(plain).decode() == "1\n00:00:00,000 --> 00:00:02,500\nAll of it.\n\n"


@pytest.mark.parametrize(
    ("response_format", "content_type"),
    [("json", "application/json"), ("text", "text/plain"), ("srt", "application/x-subrip"),
     ("vtt", "text/vtt"), ("verbose_json", "application/json")],
)  # fmt: skip
def test_each_format_has_its_content_type(response_format: str, content_type: str) -> None:
    payload = b"Hello there." if response_format == "text" else SGLANG_VERBOSE
    body, media_type = render(response_format, payload)
    assert media_type.startswith(content_type)
    assert body


def test_an_answer_that_is_not_a_transcript_is_an_error() -> None:
    with pytest.raises(TranscriptError):
        render_srt(b'{"error": "nope"}')
