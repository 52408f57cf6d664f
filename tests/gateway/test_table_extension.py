"""A new passthrough endpoint is one entry of the endpoint table (plus its wire type).

The entry below is all it takes to serve SGLang's native `/generate` at `/v1/generate`: the hot
lane, the Litestar route, the relay's stages (key, limits, routing, ledger) and the API
reference all come from the table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import msgspec

from tests.gateway.conftest import ENVIRON, KEY, gateway_settings
from tests.support.gateway import GatewayServer
from tests.support.ledger import stored_rows
from warmgate.proxy.answers.shaping import shape_as_is
from warmgate.proxy.endpoints import ENDPOINTS, Body, Endpoint
from warmgate.proxy.wire.decoding import decode_passthrough
from warmgate.proxy.wire.views import json_upstream_body


class GenerateRequest(msgspec.Struct, kw_only=True):
    """The wire type: what the gateway validates (other fields pass through untouched)."""

    model: str
    text: str


GENERATE = Endpoint(
    name="generate",
    method="POST",
    path="/v1/generate",
    summary="SGLang's native generation",
    body=Body.JSON,
    decode=lambda raw, options: decode_passthrough(raw.body, GenerateRequest, "generate"),
    request_schema=GenerateRequest,
    response_schema="GenerateResponse",
    upstream_method="POST",
    upstream_path="/generate",
    prepare=json_upstream_body,
    shape=shape_as_is,
)


def test_a_new_table_entry_is_served_validated_and_accounted(
    sim: Any, fragile_sim: Any, locked_sim: Any, tmp_path: Path
) -> None:
    settings = gateway_settings(
        tmp_path, list(sim.urls), list(fragile_sim.urls), list(locked_sim.urls)
    )
    gateway = GatewayServer(settings, environ=ENVIRON, endpoints=(*ENDPOINTS, GENERATE)).start()
    headers = {"Authorization": f"Bearer {KEY}"}
    try:
        with httpx.Client(base_url=gateway.base_url, headers=headers, timeout=30) as http:
            body = {
                "model": "demo",
                "text": "Once upon a time",
                "sampling_params": {"max_new_tokens": 4},
            }
            answer = http.post("/generate", json=body)
            assert answer.status_code == 200, answer.text
            assert answer.json()["text"]
            assert answer.json()["meta_info"]["completion_tokens"] == 4
            request_id = answer.headers["x-request-id"]

            refused = http.post("/generate", json={"model": "demo"})
            assert refused.status_code == 400
            assert refused.json()["error"]["param"] == "text"
            # A browser's request goes through Litestar's route for the same entry.
            browser = http.post("/generate", json=body, headers={"Origin": "https://a.example"})
            assert browser.status_code == 200
            assert browser.headers["access-control-allow-origin"] == "*"
            anonymous = http.post("/generate", json=body, headers={"Authorization": ""})
            assert anonymous.status_code == 401

            document = http.get(gateway.root + "/openapi.json").json()
            operation = document["paths"]["/v1/generate"]["post"]
            assert operation["operationId"] == "generate"
            assert operation["requestBody"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/GenerateRequest"
            }
    finally:
        gateway.stop()  # drains and flushes the ledger
    rows = {row.request_id: row for row in asyncio.run(stored_rows(settings.ledger_url))}
    assert rows[request_id].endpoint == "generate"
    assert rows[request_id].billed
    assert [row.endpoint for row in rows.values()].count("generate") == 4
