"""The transcription form: parsed in place, validated like OpenAI, spliced for the backend."""

from __future__ import annotations

import pytest

from warmgate.proxy.errors import InvalidRequest, PayloadTooLarge
from warmgate.proxy.wire.audio import decode_transcription, detect_format
from warmgate.proxy.wire.multipart import boundary_of, parse_parts, splice

BOUNDARY = "----wgBoundary7MA4YWxk"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"
WAV_HEAD = b"RIFF\x24\x00\x00\x00WAVEfmt "


def form(*parts: tuple[str, bytes, str | None, str | None]) -> bytes:
    """(name, value, filename, content type) parts as a multipart body."""
    out = b""
    for name, value, filename, content_type in parts:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            disposition += f'; filename="{filename}"'
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if content_type:
            out += f"Content-Type: {content_type}\r\n".encode()
        out += b"\r\n" + value + b"\r\n"
    return out + f"--{BOUNDARY}--\r\n".encode()


def audio_form(audio: bytes = WAV_HEAD + b"\x00" * 64, **fields: str) -> bytes:
    parts: list[tuple[str, bytes, str | None, str | None]] = [
        ("file", audio, "speech.wav", "audio/wav")
    ]
    parts += [(name, value.encode(), None, None) for name, value in fields.items()]
    return form(*parts)


def test_parts_are_ranges_of_the_body_not_copies() -> None:
    body = audio_form(model="whisper", language="en")
    parts = parse_parts(body, BOUNDARY.encode())
    assert [part.name for part in parts] == ["file", "model", "language"]
    file = parts[0]
    assert (file.filename, file.content_type) == ("speech.wav", "audio/wav")
    assert body[file.start : file.end] == WAV_HEAD + b"\x00" * 64
    assert body[parts[1].start : parts[1].end] == b"whisper"


def test_a_file_containing_crlf_and_dashes_is_kept_whole() -> None:
    audio = WAV_HEAD + b"\r\n--not-the-boundary\r\n\r\n" * 3
    body = audio_form(audio, model="m")
    file = parse_parts(body, BOUNDARY.encode())[0]
    assert body[file.start : file.end] == audio


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        ('multipart/form-data; boundary="quoted=b"', b"quoted=b"),
        ("multipart/form-data; charset=utf-8; boundary=abc", b"abc"),
        ("application/json", None),
        ("multipart/form-data", None),
        (None, None),
    ],
)
def test_the_boundary_is_read_from_the_content_type(
    content_type: str | None, boundary: bytes | None
) -> None:
    assert boundary_of(content_type) == boundary


def test_splicing_replaces_only_the_named_values() -> None:
    body = audio_form(model="whisper-large-v3", response_format="srt")
    request = decode_transcription(body, CONTENT_TYPE)
    upstream = request.upstream_body(body, "openai/whisper-large-v3")
    expected = audio_form(model="openai/whisper-large-v3", response_format="verbose_json")
    assert upstream == expected
    assert splice(body, []) is body


def test_a_form_that_needs_no_change_is_forwarded_as_is() -> None:
    body = audio_form(model="whisper", response_format="json")
    assert decode_transcription(body, CONTENT_TYPE).upstream_body(body, "whisper") is body


def test_the_validated_form_reports_its_fields() -> None:
    body = form(
        ("file", WAV_HEAD, "a.wav", "audio/wav"),
        ("model", b"whisper", None, None),
        ("response_format", b"verbose_json", None, None),
        ("timestamp_granularities[]", b"word", None, None),
        ("timestamp_granularities[]", b"segment", None, None),
        ("temperature", b"0.2", None, None),
        ("prompt", "caf\u00e9".encode(), None, None),
    )
    request = decode_transcription(body, CONTENT_TYPE)
    assert (request.model, request.response_format, request.audio_format) == (
        "whisper",
        "verbose_json",
        "wav",
    )
    assert request.timestamp_granularities == ("word", "segment")
    assert request.temperature == 0.2
    assert request.prompt == "café"


@pytest.mark.parametrize(
    ("filename", "content_type", "head", "expected"),
    [
        ("talk.MP3", None, b"", "mp3"),
        ("blob", "application/octet-stream", b"ID3\x04", "mp3"),
        ("blob", "application/octet-stream", b"\xff\xfb\x90", "mp3"),
        ("blob", "application/octet-stream", b"fLaC", "flac"),
        ("blob", "application/octet-stream", b"OggS", "ogg"),
        ("blob", "application/octet-stream", b"\x00\x00\x00\x20ftypM4A ", "mp4"),
        ("blob", "application/octet-stream", b"\x1a\x45\xdf\xa3", "webm"),
        ("blob", "audio/mpeg", b"????", "mp3"),
        ("notes.txt", "text/plain", b"hello", None),
        (None, None, b"", None),
    ],
)
def test_the_audio_format_comes_from_name_then_bytes_then_type(
    filename: str | None, content_type: str | None, head: bytes, expected: str | None
) -> None:
    assert detect_format(filename, content_type, head) == expected


def rejected(body: bytes, content_type: str = CONTENT_TYPE, **options: int) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        decode_transcription(body, content_type, **options)
    return caught.value


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (form(("model", b"m", None, None)), "file"),
        (form(("file", b"", "a.wav", "audio/wav"), ("model", b"m", None, None)), "file"),
        (form(("file", WAV_HEAD, None, None), ("model", b"m", None, None)), "file"),
        (form(("file", b"plain text", "a.txt", "text/plain"), ("model", b"m", None, None)),
         "file"),
        (form(("file", WAV_HEAD, "a.wav", "audio/wav")), "model"),
        (audio_form(model="m", response_format="mp3"), "response_format"),
        (audio_form(model="m", temperature="hot"), "temperature"),
        (audio_form(model="m", temperature="-0.5"), "temperature"),
        (audio_form(model="m", stream="maybe"), "stream"),
        (audio_form(model="m", stream="true"), "stream"),
        (form(("file", WAV_HEAD, "a.wav", "audio/wav"), ("model", b"m", None, None),
              ("timestamp_granularities[]", b"word", None, None)), "timestamp_granularities"),
        (form(("file", WAV_HEAD, "a.wav", "audio/wav"), ("model", b"\xff\xfe", None, None)),
         "model"),
    ],
)  # fmt: skip
def test_an_invalid_form_names_the_field(body: bytes, param: str) -> None:
    assert rejected(body).param == param


def test_a_file_over_the_limit_is_413_naming_the_file() -> None:
    with pytest.raises(PayloadTooLarge) as caught:
        decode_transcription(audio_form(WAV_HEAD + b"\x00" * 100, model="m"), CONTENT_TYPE,
                             max_file_bytes=64)  # fmt: skip
    assert (caught.value.status, caught.value.param) == (413, "file")


def test_a_body_that_is_not_multipart_is_a_400_naming_its_content_type() -> None:
    with pytest.raises(InvalidRequest) as caught:
        decode_transcription(b'{"model": "m"}', "application/json")
    assert caught.value.status == 400
    assert "(application/json)" in caught.value.message


@pytest.mark.parametrize(
    "body",
    [b"", b"no boundary here", f"--{BOUNDARY}\r\nContent-Disposition: form-data".encode(),
     f"--{BOUNDARY}\r\nX: y\r\n\r\nvalue\r\n--{BOUNDARY}--".encode()],
    ids=["empty", "no-delimiter", "unterminated-head", "part-without-name"],
)  # fmt: skip
def test_broken_framing_is_a_400(body: bytes) -> None:
    error = rejected(body)
    assert error.status == 400
    assert error.param is None


def test_the_gateways_own_buffer_is_edited_in_place_not_copied() -> None:
    buffer = bytearray(audio_form(WAV_HEAD + b"\x01" * 4096, model="alias", response_format="vtt"))
    request = decode_transcription(buffer, CONTENT_TYPE)
    upstream = request.upstream_body(buffer, "served-name")
    assert upstream is buffer
    assert bytes(buffer) == audio_form(
        WAV_HEAD + b"\x01" * 4096, model="served-name", response_format="verbose_json"
    )


def test_an_rfc5987_file_name_is_understood() -> None:
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
        "filename*=UTF-8''r%C3%A9union.mp3\r\nContent-Type: application/octet-stream\r\n\r\n"
    ).encode()
    body = head + b"ID3\x04data\r\n" + form(("model", b"m", None, None))
    request = decode_transcription(body, CONTENT_TYPE)
    assert (request.file.filename, request.audio_format) == ("réunion.mp3", "mp3")
