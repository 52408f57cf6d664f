"""The OpenAPI document: valid OpenAPI 3.1, one entry for every route the app serves and none for
a route it does not, and request schemas that are the validating Structs' own."""

from __future__ import annotations

import re
from typing import Any

import msgspec
from litestar.routes import HTTPRoute
from openapi_spec_validator import validate

from tests.billing.edge import edge_settings
from warmgate.proxy.console.reports_api import LatencyReportQuery, UsageReportQuery
from warmgate.proxy.endpoints import ENDPOINTS, Body
from warmgate.proxy.http.app import create_app
from warmgate.proxy.http.routes.openapi import openapi_document
from warmgate.proxy.keys.issue import KeySpec
from warmgate.proxy.keys.store import KeyUpdate

METHODS = {"get", "post", "put", "patch", "delete"}


def _shape(path: str) -> str:
    """A path with its parameters unnamed: `/v1/models/{model_id:path}` -> `/v1/models/{}`."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def served_routes() -> set[tuple[str, str]]:
    app = create_app(
        edge_settings("sqlite:///unused.db", ["http://127.0.0.1:9"]), environ={"WG_ADMIN_KEY": "k"}
    )
    served = set()
    for route in app.routes:
        assert isinstance(route, HTTPRoute), route
        for method in route.methods:
            if method.lower() in METHODS:
                served.add((method.lower(), _shape(route.path)))
    return served


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method, _shape(path))
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def test_the_document_is_valid_openapi() -> None:
    document = openapi_document()
    validate(document)
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert operation["summary"], (method, path)  # the docs page lists it by these
            assert operation["tags"], (method, path)


def test_the_document_lists_exactly_the_routes_the_app_serves() -> None:
    served = served_routes()
    documented = documented_routes(openapi_document())
    assert served - documented == set(), "served but not documented"
    assert documented - served == set(), "documented but not served"
    for route in (  # the OpenAI surface, usage, admin, console and docs are all there
        ("post", "/v1/chat/completions"),
        ("post", "/v1/audio/transcriptions"),
        ("get", "/v1/generations/{}"),
        ("patch", "/admin/keys/{}"),
        ("get", "/admin/reports/latency"),
        ("post", "/console/login"),
        ("get", "/docs"),
    ):
        assert route in served


def test_request_schemas_are_the_validating_structs() -> None:
    document = openapi_document()
    components = document["components"]["schemas"]
    _, expected = msgspec.json.schema_components(
        [KeySpec, KeyUpdate], ref_template="#/components/schemas/{name}"
    )
    assert components["KeySpec"] == expected["KeySpec"]
    assert components["KeyUpdate"] == expected["KeyUpdate"]
    paths = document["paths"]
    body = paths["/admin/keys"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/KeySpec"}
    for endpoint in ENDPOINTS:
        if endpoint.body is Body.JSON and endpoint.request_schema is not None:
            path = re.sub(r"\{(\w+):\w+\}", r"{\1}", endpoint.path)
            content = paths[path][endpoint.method.lower()]["requestBody"]["content"]
            name = endpoint.request_schema.__name__
            assert content["application/json"]["schema"] == {"$ref": f"#/components/schemas/{name}"}
            assert name in components


def test_report_query_parameters_are_the_fields_of_their_structs() -> None:
    paths = openapi_document()["paths"]
    for path, kind in (
        ("/admin/reports/usage", UsageReportQuery),
        ("/admin/reports/latency", LatencyReportQuery),
    ):
        parameters = paths[path]["get"]["parameters"]
        assert [p["name"] for p in parameters] == list(kind.__struct_fields__)
        assert all(p["in"] == "query" for p in parameters)
    bucket = next(
        p for p in paths["/admin/reports/usage"]["get"]["parameters"] if p["name"] == "bucket"
    )
    assert bucket["schema"]["enum"] == ["day", "hour"]


def test_admin_operations_take_the_admin_key_or_a_console_session() -> None:
    for path, item in openapi_document()["paths"].items():
        if path.startswith("/admin/"):
            for operation in item.values():
                assert operation["security"] == [{"bearer": []}, {"console_session": []}], path
