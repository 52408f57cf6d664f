"""The rest of the OpenAI surface on a replica: transcriptions, Responses API, images."""

from __future__ import annotations

from aiohttp import web

from warmgate.backends.sim.response_store import ResponseStore
from warmgate.backends.sim.routes import images, responses, transcriptions


def install(app: web.Application) -> None:
    """Add the routes and the per-replica stores they keep (before the catch-all route)."""
    store = ResponseStore()
    app[responses.RESPONSES] = store
    app.on_cleanup.append(store.close)
    app[images.IMAGES] = images.ImageStore()
    add = app.router.add_route
    add("POST", "/v1/audio/transcriptions", transcriptions.transcriptions)
    add("POST", "/v1/responses", responses.create)
    add("GET", "/v1/responses/{response_id}", responses.retrieve)
    add("POST", "/v1/responses/{response_id}/cancel", responses.cancel)
    add("POST", "/v1/images/generations", images.generations)
    add("GET", "/v1/images/{image_id}/content", images.content)
