"""The console's static files, served by the edge itself from the package's data.

Every script, style and page the console and the API docs use ships inside the package
(`static/`, package data), so an edge without outbound internet serves all of it. Files are read
once; each answer carries an ETag (a browser revalidates instead of downloading again) and, when
the browser accepts it, a gzip body compressed once per file.
"""

from __future__ import annotations

import gzip
import hashlib
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath

from warmgate.proxy.errors import NotFound

AnyRequest = Request[Any, Any, Any]
ASSETS_PATH = "/console/assets"
CONTENT_TYPES = {
    # Litestar adds `; charset=utf-8` to text types itself.
    ".js": "text/javascript",
    ".css": "text/css",
    ".html": "text/html",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".txt": "text/plain",
}
_COMPRESSIBLE = (".js", ".css", ".html", ".svg", ".txt")
# Headers every answer of the console carries: no sniffing, no framing, no referrer elsewhere.
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    # Not no-referrer: with it, browsers send `Origin: null` on form posts, which the login refuses.
    "referrer-policy": "same-origin",
}


class Asset:
    __slots__ = ("_gzipped", "body", "content_type", "etag")

    def __init__(self, body: bytes, content_type: str) -> None:
        self.body = body
        self.content_type = content_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        self._gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=9, mtime=0)
        return self._gzipped


def _walk(folder: Traversable, prefix: str = "") -> dict[str, Traversable]:
    files: dict[str, Traversable] = {}
    for entry in folder.iterdir():
        name = f"{prefix}{entry.name}"
        if entry.is_dir():
            files.update(_walk(entry, name + "/"))
        elif "." + entry.name.rpartition(".")[2] in CONTENT_TYPES or entry.name.isupper():
            files[name] = entry
    return files


class Assets:
    """The files under `static/`, by their path there (`console.js`, `vendor/...`)."""

    def __init__(self, root: Traversable | None = None) -> None:
        folder = root or resources.files("warmgate.proxy.console") / "static"
        self._files: dict[str, Asset] = {}
        for name, entry in _walk(folder).items():
            suffix = "." + name.rpartition(".")[2]
            content_type = CONTENT_TYPES.get(suffix, "text/plain")
            self._files[name] = Asset(entry.read_bytes(), content_type)

    def __contains__(self, name: str) -> bool:
        return name in self._files

    def text(self, name: str) -> str:
        return self._files[name].body.decode()

    def answer(self, name: str, request: AnyRequest) -> Response[bytes]:
        asset = self._files.get(name)
        if asset is None:
            raise NotFound(f"No console asset '{name}'.", code="unknown_url")
        headers = {**SECURITY_HEADERS, "etag": asset.etag, "cache-control": "no-cache"}
        if request.headers.get("if-none-match") == asset.etag:
            return Response(b"", status_code=304, headers=headers)
        body = asset.body
        compressible = name.endswith(_COMPRESSIBLE)
        if compressible:
            headers["vary"] = "accept-encoding"
            if "gzip" in request.headers.get("accept-encoding", ""):
                body = asset.gzipped()
                headers["content-encoding"] = "gzip"
        return Response(body, media_type=asset.content_type, headers=headers)


def asset_routes(assets: Assets) -> list[HTTPRouteHandler]:
    @get(f"{ASSETS_PATH}/{{name:path}}", name="console_assets")
    async def asset(request: AnyRequest, name: FromPath[str]) -> Response[bytes]:
        return assets.answer(name.removeprefix("/"), request)

    return [asset]
