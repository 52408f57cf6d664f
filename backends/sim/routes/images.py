"""POST /v1/images/generations as SGLang's diffusion server (multimodal_gen image_api) answers.

Each image is a small PNG whose colour is seeded by the prompt; `url` answers point at
GET /v1/images/{id}/content on this replica, which serves the stored bytes.
"""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from collections import OrderedDict
from typing import Any

import msgspec
from aiohttp import web

from warmgate.backends.sim.errors import SimError
from warmgate.backends.sim.routes import intake
from warmgate.backends.sim.wire import encode

IMAGE_SIDE = 8
STORED_IMAGES = 256  # the newest images kept for url answers


class ImageGenerationsRequest(msgspec.Struct, kw_only=True):
    prompt: str
    model: str | None = None
    n: int | None = 1
    response_format: str | None = "url"
    size: str | None = "1024x1024"


class ImageStore:
    """The replica's generated images, newest kept, for `url` answers."""

    def __init__(self, capacity: int = STORED_IMAGES) -> None:
        self._capacity = capacity
        self._images: OrderedDict[str, bytes] = OrderedDict()

    def put(self, png: bytes) -> str:
        image_id = f"img_{uuid.uuid4().hex}"
        self._images[image_id] = png
        while len(self._images) > self._capacity:
            self._images.popitem(last=False)
        return image_id

    def get(self, image_id: str) -> bytes | None:
        return self._images.get(image_id)


IMAGES = web.AppKey("images", ImageStore)
_decoder = msgspec.json.Decoder(ImageGenerationsRequest)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(seed: int, side: int = IMAGE_SIDE) -> bytes:
    """A valid side-by-side RGB PNG of one colour derived from `seed`."""
    pixel = bytes(((seed >> shift) & 0xFF) for shift in (0, 8, 16))
    rows = b"".join(b"\x00" + pixel * side for _ in range(side))
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header)
            + _chunk(b"IDAT", zlib.compress(rows)) + _chunk(b"IEND", b""))  # fmt: skip


async def generations(request: web.Request) -> web.Response:
    replica = intake.replica_of(request)
    try:
        body = await intake.read_body(request, replica)
        image: ImageGenerationsRequest = intake.decode(_decoder, body, "ImageGenerationsRequest")
        response_format = (image.response_format or "url").lower()
        if response_format not in ("url", "b64_json"):
            raise SimError(f"response_format must be 'url' or 'b64_json', got {response_format}")
        intake.check_model(image.model or replica.config.served_name, replica.config)
        await intake.pass_faults(replica)
    except SimError as error:
        return intake.error_response(error)
    store = request.app[IMAGES]
    data: list[dict[str, Any]] = []
    for index in range(image.n or 1):
        picture = png(zlib.crc32(f"{image.prompt}|{index}".encode()))
        item: dict[str, Any] = {"b64_json": None, "url": None, "revised_prompt": None,
                                "file_path": None, "resize": None}  # fmt: skip
        if response_format == "b64_json":
            item["b64_json"] = base64.b64encode(picture).decode("ascii")
        else:
            item["url"] = f"{replica.url}/v1/images/{store.put(picture)}/content"
        data.append(item)
    replica.telemetry.requests_received += 1
    answer = {"id": uuid.uuid4().hex, "created": int(time.time()), "data": data,
              "peak_memory_mb": None, "inference_time_s": 0.0,
              "usage": {"prompt_tokens": None, "total_tokens": None,
                        "completion_tokens": None}}  # fmt: skip
    return intake.json_response(encode(answer))


async def content(request: web.Request) -> web.Response:
    picture = request.app[IMAGES].get(request.match_info["image_id"])
    if picture is None:
        return intake.json_response(b'{"detail":"Image not found"}', 404)
    return web.Response(body=picture, content_type="image/png")
