"""The simulator answers the rest of the surface the way SGLang does (which the gateway fixes)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.surface.audio import wav

SPEECH = wav(3.0, seed=9)


def transcribe(url: str, **fields: str) -> httpx.Response:
    return httpx.post(
        url + "/v1/audio/transcriptions",
        files={"file": ("a.wav", SPEECH, "audio/wav")},
        data={"model": "demo", **fields},
        timeout=10,
    )


def test_transcriptions_render_only_sglangs_three_formats(sim: Any) -> None:
    refused = transcribe(sim.urls[0], response_format="srt")
    assert refused.status_code == 400
    assert refused.json() == {
        "error": {"message": "Only 'json', 'text', and 'verbose_json' formats supported"}
    }
    verbose = transcribe(sim.urls[0], response_format="verbose_json").json()
    assert verbose["language"] is None
    assert verbose["duration"] == 3.0
    assert set(verbose["segments"][0]) == {"id", "start", "end", "text"}
    assert transcribe(sim.urls[0]).json()["usage"] == {"type": "duration", "seconds": 3}


def test_the_same_audio_gives_the_same_text(sim: Any) -> None:
    texts = {transcribe(url, response_format="text").text for url in sim.urls}
    assert len(texts) == 1


def test_responses_carry_sglangs_nulls_and_stream_without_done(sim: Any) -> None:
    url = sim.urls[0] + "/v1/responses"
    created = httpx.post(url, json={"model": "demo", "input": "hi"}, timeout=10).json()
    assert created["user"] is None
    assert created["status"] == "completed"
    with httpx.stream("POST", url, json={"model": "demo", "input": "hi", "stream": True}) as s:
        raw = s.read()
    assert raw.startswith(b"event: response.created\ndata: ")
    assert raw.rstrip().split(b"\n")[-2] == b"event: response.completed"
    assert b"[DONE]" not in raw


def test_an_unknown_response_is_sglangs_nested_404_with_an_integer_code(sim: Any) -> None:
    response = httpx.get(sim.urls[0] + "/v1/responses/resp_missing", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == 404


def test_image_urls_point_at_the_replica_and_serve_the_png(sim: Any) -> None:
    answer = httpx.post(
        sim.urls[1] + "/v1/images/generations",
        json={"model": "demo", "prompt": "a boat"},
        timeout=10,
    ).json()
    item = answer["data"][0]
    assert item["revised_prompt"] is None
    assert item["url"].startswith(sim.urls[1] + "/v1/images/img_")
    image = httpx.get(item["url"], timeout=10)
    assert image.headers["content-type"] == "image/png"
    assert image.content.startswith(b"\x89PNG\r\n\x1a\n")
