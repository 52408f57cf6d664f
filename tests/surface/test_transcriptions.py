"""POST /v1/audio/transcriptions through `warmgate serve`, with the official SDK."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.served import ServedGateway
from tests.surface.audio import wav
from tests.surface.conftest import MAX_AUDIO_BYTES, received, sim_stats

MODEL = "whisper-large-v3"
SPEECH = wav(4.0, seed=3)


def test_json_is_the_default_format_with_duration_usage(client: OpenAI) -> None:
    transcript = client.audio.transcriptions.create(model=MODEL, file=("speech.wav", SPEECH))
    assert transcript.text
    assert transcript.usage is not None
    assert transcript.usage.type == "duration"
    assert transcript.usage.seconds == 4


def test_every_response_format_carries_the_same_transcript(client: OpenAI) -> None:
    upload = ("speech.wav", SPEECH)
    text = client.audio.transcriptions.create(model=MODEL, file=upload).text
    plain = client.audio.transcriptions.create(model=MODEL, file=upload, response_format="text")
    assert plain == text
    verbose = client.audio.transcriptions.create(
        model=MODEL, file=upload, response_format="verbose_json"
    )
    assert verbose.text == text
    assert verbose.duration == pytest.approx(4.0)
    assert verbose.language
    assert verbose.segments
    assert " ".join(segment.text.strip() for segment in verbose.segments) == text
    srt = client.audio.transcriptions.create(model=MODEL, file=upload, response_format="srt")
    cues = srt.strip().split("\n\n")
    assert cues[0].startswith("1\n00:00:00,000 --> ")
    assert len(cues) == len(verbose.segments)
    assert " ".join(cue.split("\n", 2)[2] for cue in cues) == text
    vtt = client.audio.transcriptions.create(model=MODEL, file=upload, response_format="vtt")
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> ")
    assert re.findall(r"\d\d:\d\d:\d\d\.\d{3} --> \d\d:\d\d:\d\d\.\d{3}", vtt)


def test_text_formats_have_their_content_types(http: httpx.Client) -> None:
    expected = {"text": "text/plain", "srt": "application/x-subrip", "vtt": "text/vtt"}
    for response_format, content_type in expected.items():
        response = http.post(
            "audio/transcriptions",
            files={"file": ("speech.wav", SPEECH, "audio/wav")},
            data={"model": MODEL, "response_format": response_format},
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(content_type)
        assert response.headers["x-request-id"]


def test_the_backend_gets_the_served_model_and_a_format_it_can_render(
    client: OpenAI, sim: Any
) -> None:
    client.audio.transcriptions.create(
        model=MODEL, file=("speech.wav", SPEECH), response_format="srt"
    )
    stats = sim_stats(sim.urls[0])
    assert stats["last_request_path"] == "/v1/audio/transcriptions"
    form = stats["last_request_body"]
    assert 'name="model"\r\n\r\ndemo\r\n' in form
    assert 'name="response_format"\r\n\r\nverbose_json\r\n' in form


def test_an_octet_stream_upload_is_recognised_by_its_first_bytes(http: httpx.Client) -> None:
    # Node's SDK (toFile) sends application/octet-stream; a Blob may have no extension.
    response = http.post(
        "audio/transcriptions",
        files={"file": ("blob", SPEECH, "application/octet-stream")},
        data={"model": MODEL},
    )
    assert response.status_code == 200, response.text
    assert response.json()["text"]


def test_a_transcription_is_accounted_at_the_flat_price(
    served: ServedGateway, http: httpx.Client
) -> None:
    response = http.post(
        "audio/transcriptions",
        files={"file": ("speech.wav", SPEECH, "audio/wav")},
        data={"model": MODEL},
    )
    assert response.status_code == 200
    assert float(response.headers["x-warmgate-price-usd"]) == 0.006
    record = served.request_log(response.headers["x-request-id"])
    assert (record["endpoint"], record["model"], record["status"], record["billed"]) == (
        "audio.transcriptions",
        MODEL,
        200,
        True,
    )


def bad_upload(http: httpx.Client, **request: Any) -> dict[str, Any]:
    response = http.post("audio/transcriptions", **request)
    assert response.headers["x-request-id"]
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    body["status"] = response.status_code
    return body


BAD_UPLOADS: list[tuple[str, dict[str, Any], int, str | None]] = [
    ("no file", {"data": {"model": MODEL}, "files": {"other": ("x.txt", b"x")}}, 400, "file"),
    ("empty file", {"files": {"file": ("speech.wav", b"", "audio/wav")},
                    "data": {"model": MODEL}}, 400, "file"),
    ("file as a text field", {"files": {"model": (None, MODEL), "file": (None, "abc")}}, 400,
     "file"),
    ("not audio", {"files": {"file": ("notes.txt", b"just text", "text/plain")},
                   "data": {"model": MODEL}}, 400, "file"),
    ("too large", {"files": {"file": ("long.wav", wav(10.0), "audio/wav")},
                   "data": {"model": MODEL}}, 413, "file"),
    ("no model", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")}}, 400, "model"),
    ("temperature not a number", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
                                  "data": {"model": MODEL, "temperature": "warm"}}, 400,
     "temperature"),
    ("temperature above 1", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
                             "data": {"model": MODEL, "temperature": "1.5"}}, 400,
     "temperature"),
    ("unknown response_format", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
                                 "data": {"model": MODEL, "response_format": "mp3"}}, 400,
     "response_format"),
    ("granularities without verbose_json",
     {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
      "data": {"model": MODEL, "timestamp_granularities[]": "word"}}, 400,
     "timestamp_granularities"),
    ("unknown granularity", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
                             "data": {"model": MODEL, "response_format": "verbose_json",
                                      "timestamp_granularities[]": "syllable"}}, 400,
     "timestamp_granularities"),
    ("streaming", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
                   "data": {"model": MODEL, "stream": "true"}}, 400, "stream"),
    ("unknown model", {"files": {"file": ("speech.wav", SPEECH, "audio/wav")},
                       "data": {"model": "no-such-model"}}, 404, "model"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("request_parts", "status", "param"),
    [(parts, status, param) for _, parts, status, param in BAD_UPLOADS],
    ids=[name for name, *_ in BAD_UPLOADS],
)
def test_a_bad_upload_gets_the_openai_error_and_never_reaches_a_backend(
    http: httpx.Client, sim: Any, request_parts: dict[str, Any], status: int, param: str | None
) -> None:
    before = received(sim)
    body = bad_upload(http, **request_parts)
    assert body["status"] == status
    assert body["error"]["param"] == param
    assert body["error"]["message"]
    assert received(sim) == before


def test_a_json_body_is_refused_as_the_wrong_content_type(http: httpx.Client) -> None:
    body = bad_upload(http, content=json.dumps({"model": MODEL}).encode(),
                      headers={"Content-Type": "application/json"})  # fmt: skip
    assert body["status"] == 400
    assert body["error"]["message"].startswith("Invalid Content-Type header (application/json)")


def test_an_upload_over_the_limit_is_a_413_in_openai_shape(http: httpx.Client) -> None:
    oversized = wav(2 * MAX_AUDIO_BYTES / 32_000)
    body = bad_upload(http, files={"file": ("big.wav", oversized, "audio/wav")},
                      data={"model": MODEL})  # fmt: skip
    assert body["status"] == 413
    assert body["error"]["type"] == "invalid_request_error"


def test_the_sdk_raises_bad_request_with_param_file(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.audio.transcriptions.create(model=MODEL, file=("speech.wav", b""))
    assert caught.value.param == "file"


def test_uploads_leave_no_file_behind(served: ServedGateway, http: httpx.Client) -> None:
    for audio in (SPEECH, wav(10.0), b""):
        http.post(
            "audio/transcriptions",
            files={"file": ("speech.wav", audio, "audio/wav")},
            data={"model": MODEL},
        )
    assert list(served.tmpdir.iterdir()) == []
