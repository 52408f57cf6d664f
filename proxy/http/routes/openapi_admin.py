"""The OpenAPI paths of what the gateway answers itself beyond the OpenAI surface: usage and
generations, the admin API, the console and the docs.

Request bodies and query strings are described by the Structs that validate them (`KeySpec`,
`KeyUpdate`, the console's query Structs: each query parameter is one field of its Struct), and
the console's answers by the Structs that encode them, so that the document cannot drift from
what the handlers accept and return.
"""

from __future__ import annotations

from typing import Any

import msgspec

from warmgate.proxy.console.pages import SessionInfo
from warmgate.proxy.console.reports_api import (
    FleetQuery,
    FleetResponse,
    LatencyReportQuery,
    LatencyReportResponse,
    UsageReportQuery,
    UsageReportResponse,
)
from warmgate.proxy.console.session import CSRF_HEADER, SESSION_COOKIE
from warmgate.proxy.keys.issue import KeySpec
from warmgate.proxy.keys.store import KeyUpdate
from warmgate.proxy.media import CSV, JSON

REF = "#/components/schemas/{name}"
# The Structs this part of the document names; their schemas join the document's components.
SCHEMAS: tuple[type[msgspec.Struct], ...] = (
    KeySpec,
    KeyUpdate,
    UsageReportResponse,
    LatencyReportResponse,
    FleetResponse,
    SessionInfo,
)
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer"},
    "console_session": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The console's session (POST /console/login). Requests other than GET "
        f"need the session's CSRF token in `{CSRF_HEADER}` (GET /console/session).",
    },
}
ADMIN_SECURITY: list[dict[str, list[str]]] = [{"bearer": []}, {"console_session": []}]
_ERROR = {JSON: {"schema": {"$ref": REF.format(name="ErrorResponse")}}}
_ADMIN_ERRORS = {
    "401": {"description": "No key, a wrong key, or no console session", "content": _ERROR},
    "403": {
        "description": "A user key, or a session request without its CSRF token",
        "content": _ERROR,
    },
}
_HTML = {"text/html": {"schema": {"type": "string"}}}


def _ref(kind: type[msgspec.Struct]) -> dict[str, str]:
    return {"$ref": REF.format(name=kind.__name__)}


def _json(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _object(description: str) -> dict[str, Any]:
    return {"type": "object", "description": description}


def query_parameters(kind: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """One query parameter per field of the Struct that validates the query string."""
    _, components = msgspec.json.schema_components([kind], ref_template=REF)
    schema = components[kind.__name__]
    required = set(schema.get("required", ()))
    return [
        {"name": name, "in": "query", "required": name in required, "schema": field}
        for name, field in schema["properties"].items()
    ]


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _query(name: str, description: str, **schema: Any) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": schema or {"type": "string"},
        "description": description,
    }


_TIME = "unix seconds, a date (YYYY-MM-DD, UTC midnight) or an ISO 8601 time"


def _admin(operation_id: str, summary: str, **more: Any) -> dict[str, Any]:
    responses = more.pop("responses", {"200": _json(_object("OK"))})
    return {
        "operationId": operation_id,
        "summary": summary,
        "tags": [more.pop("tag", "admin")],
        "security": ADMIN_SECURITY,
        **more,
        "responses": {**responses, **_ADMIN_ERRORS},
    }


def _usage_paths() -> dict[str, Any]:
    user: list[dict[str, list[str]]] = [{"bearer": []}]
    key_errors = {"401": {"description": "Missing or wrong API key", "content": _ERROR}}
    return {
        "/v1/usage": {
            "get": {
                "operationId": "usage",
                "summary": "The calling key's own usage: one total, or per day or model",
                "tags": ["usage"],
                "security": user,
                "parameters": [
                    _query("start", f"Inclusive start: {_TIME}"),
                    _query("end", f"Exclusive end: {_TIME}"),
                    _query("group_by", "Sum per day or model", enum=["day", "model"]),
                ],
                "responses": {"200": _json(_object("Usage sums")), **key_errors},
            }
        },
        "/v1/generations/{generation_id}": {
            "get": {
                "operationId": "generation",
                "summary": "One of the calling key's requests, as its ledger row",
                "tags": ["usage"],
                "security": user,
                "parameters": [_path("generation_id", "The request id (x-request-id)")],
                "responses": {
                    "200": _json(_object("The ledger row")),
                    **key_errors,
                    "404": {"description": "No such request for this key", "content": _ERROR},
                },
            }
        },
    }


def _admin_paths() -> dict[str, Any]:
    key_id = _path("key_id", "The key's id (key_...)")
    key = _json(_object("The key's public fields (never its secret)"))
    return {
        "/admin/backends": {
            "get": _admin("admin_backends", "Every backend's state, health, load and ejections")
        },
        "/admin/usage": {
            "get": _admin(
                "admin_usage",
                "Every key's usage, per key, model or day (CSV with Accept: text/csv)",
                parameters=[
                    _query("start", f"Inclusive start: {_TIME}"),
                    _query("end", f"Exclusive end: {_TIME}"),
                    _query("group_by", "Sum per key, model or day", enum=["key", "model", "day"]),
                    _query("key_id", "Only this key's rows"),
                ],
                responses={
                    "200": {
                        "description": "Usage sums",
                        "content": {
                            JSON: {"schema": _object("Usage sums")},
                            CSV: {"schema": {"type": "string"}},
                        },
                    }
                },
            )
        },
        "/admin/keys": {
            "get": _admin("admin_keys_list", "List every key", responses={"200": key}),
            "post": _admin(
                "admin_keys_create",
                "Create a key; the answer holds its secret, shown once",
                requestBody={"required": True, "content": {JSON: {"schema": _ref(KeySpec)}}},
                responses={"201": _json(_object("The key and its `secret`"), "Created")},
            ),
        },
        "/admin/keys/{key_id}": {
            "get": _admin(
                "admin_keys_get", "Read a key", parameters=[key_id], responses={"200": key}
            ),
            "patch": _admin(
                "admin_keys_update",
                "Change a key's name, models or limits",
                parameters=[key_id],
                requestBody={"required": True, "content": {JSON: {"schema": _ref(KeyUpdate)}}},
                responses={"200": key},
            ),
            "delete": _admin(
                "admin_keys_delete", "Revoke a key", parameters=[key_id], responses={"200": key}
            ),
        },
        "/admin/keys/{key_id}/revoke": {
            "post": _admin(
                "admin_keys_revoke", "Revoke a key", parameters=[key_id], responses={"200": key}
            )
        },
        "/admin/reports/usage": {
            "get": _admin(
                "admin_reports_usage",
                "Requests, billed requests and revenue per hour or day and model, key or "
                "backend: every group's totals, and the top groups' series",
                tag="console",
                parameters=query_parameters(UsageReportQuery),
                responses={
                    "200": {
                        "description": "The report (CSV with format=csv)",
                        "content": {
                            JSON: {"schema": _ref(UsageReportResponse)},
                            CSV: {"schema": {"type": "string"}},
                        },
                    }
                },
            )
        },
        "/admin/reports/latency": {
            "get": _admin(
                "admin_reports_latency",
                "TTFT, total time and the gateway's own time (queue_ms), p50 and p95 per hour "
                "or day and model or backend",
                tag="console",
                parameters=query_parameters(LatencyReportQuery),
                responses={"200": _json(_ref(LatencyReportResponse))},
            )
        },
        "/admin/reports/fleet": {
            "get": _admin(
                "admin_reports_fleet",
                "Each backend's health, breaker, region, load and last probe error, with its "
                "traffic and prefix-cache hit rate over a recent window",
                tag="console",
                parameters=query_parameters(FleetQuery),
                responses={"200": _json(_ref(FleetResponse))},
            )
        },
    }


def _console_paths() -> dict[str, Any]:
    page = {"200": {"description": "The page", "content": _HTML}}
    redirect = {"303": {"description": "Redirect (with Set-Cookie)"}}
    form = {
        "application/x-www-form-urlencoded": {
            "schema": {
                "type": "object",
                "required": ["key", "login_token"],
                "properties": {
                    "key": {"type": "string", "description": "The admin key"},
                    "login_token": {
                        "type": "string",
                        "description": "The form's token (it must match its cookie)",
                    },
                },
            }
        }
    }
    return {
        "/console": {
            "get": {
                "operationId": "console",
                "summary": "The console (redirects to the login form without a session)",
                "tags": ["console"],
                "responses": {**page, "303": {"description": "To /console/login"}},
            }
        },
        "/console/login": {
            "get": {
                "operationId": "console_login_form",
                "summary": "The login form",
                "tags": ["console"],
                "responses": page,
            },
            "post": {
                "operationId": "console_login",
                "summary": "Exchange the admin key for the session cookie",
                "tags": ["console"],
                "requestBody": {"required": True, "content": form},
                "responses": {
                    **redirect,
                    "400": {
                        "description": "The form's token is missing or from elsewhere",
                        "content": _HTML,
                    },
                    "401": {"description": "Not the admin key", "content": _HTML},
                    "403": {"description": "A user key", "content": _HTML},
                },
            },
        },
        "/console/session": {
            "get": {
                "operationId": "console_session",
                "summary": "The session's CSRF token and expiry",
                "tags": ["console"],
                "security": [{"console_session": []}],
                "responses": {
                    "200": _json(_ref(SessionInfo)),
                    "401": {"description": "No session", "content": _ERROR},
                },
            }
        },
        "/console/logout": {
            "post": {
                "operationId": "console_logout",
                "summary": "End the session (CSRF token in the header or the form)",
                "tags": ["console"],
                "security": [{"console_session": []}],
                "responses": redirect,
            }
        },
        "/console/assets/{name}": {
            "get": {
                "operationId": "console_assets",
                "summary": "The console's and the docs' scripts, styles and licenses",
                "tags": ["console"],
                "parameters": [_path("name", "The file's path, e.g. console.js")],
                "responses": {
                    "200": {"description": "The file"},
                    "304": {"description": "Not modified (ETag)"},
                    "404": {"description": "No such file", "content": _ERROR},
                },
            }
        },
        "/docs": {
            "get": {
                "operationId": "docs",
                "summary": "This reference, interactive (Swagger UI, served by the edge)",
                "tags": ["docs"],
                "responses": page,
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["docs"],
                "responses": {"200": _json({"type": "object"})},
            }
        },
    }


def admin_paths() -> dict[str, Any]:
    """Usage, admin, console and docs paths, by OpenAPI path."""
    return {**_usage_paths(), **_admin_paths(), **_console_paths()}
