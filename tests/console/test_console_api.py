"""The console over real HTTP: the login form, the session cookie, CSRF, and the JSON endpoints
the pages draw, which the admin key reaches too."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.billing.edge import edge_settings, running_edge, sim_cluster
from tests.console.edge import ADMIN_KEY, SeededEdge, login, seeded_edge
from tests.console.seed import DAY_S, day_label, expected_usage
from warmgate.proxy.console.session import SESSION_COOKIE, ConsoleSessions


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededEdge]:
    path: Path = tmp_path_factory.mktemp("console") / "warmgate.db"
    with seeded_edge(f"sqlite:///{path}") as seeded:
        yield seeded


@pytest.fixture
def browser(seeded: SeededEdge) -> Iterator[httpx.Client]:
    """A client of its own, with its own cookie jar, signed in."""
    with httpx.Client(base_url=seeded.edge.server.root, timeout=30) as client:
        assert login(client, ADMIN_KEY).status_code == 303
        yield client


def _client(seeded: SeededEdge) -> httpx.Client:
    return httpx.Client(base_url=seeded.edge.server.root, timeout=30)


def test_console_without_a_session_redirects_to_the_login_form(seeded: SeededEdge) -> None:
    with _client(seeded) as client:
        answer = client.get("/console")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/login"
        form = client.get("/console/login")
        assert form.status_code == 200
        assert form.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in form.headers["content-security-policy"]
        assert 'name="key" type="password"' in form.text


def test_the_admin_key_gets_an_httponly_strict_session_cookie(seeded: SeededEdge) -> None:
    with _client(seeded) as client:
        answer = login(client, ADMIN_KEY)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console"
        cookie = next(
            c for c in answer.headers.get_list("set-cookie") if c.startswith(SESSION_COOKIE)
        )
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        assert "Path=/" in cookie
        assert ADMIN_KEY not in cookie
        assert ADMIN_KEY not in answer.headers["location"]
        page = client.get("/console")
        assert page.status_code == 200
        assert 'src="/console/assets/console.js"' in page.text


def test_a_wrong_key_and_a_user_key_are_refused(seeded: SeededEdge) -> None:
    _, secret = seeded.edge.create_key(name="someone")
    with _client(seeded) as client:
        wrong = login(client, "wg-not-the-admin-key")
        assert wrong.status_code == 401
        assert "That is not the admin key." in wrong.text
        user = login(client, secret)
        assert user.status_code == 403
        assert "A user key cannot open the console" in user.text
        assert SESSION_COOKIE not in client.cookies
        assert client.get("/console").status_code == 303


def test_a_login_without_its_form_token_or_from_another_origin_is_refused(
    seeded: SeededEdge,
) -> None:
    with _client(seeded) as client:
        forged = client.post("/console/login", data={"key": ADMIN_KEY, "login_token": "guess"})
        assert forged.status_code == 400
        other = login(client, ADMIN_KEY, origin="https://elsewhere.example")
        assert other.status_code == 400
        assert SESSION_COOKIE not in client.cookies


def test_a_session_changes_nothing_without_its_csrf_token(browser: httpx.Client) -> None:
    refused = browser.post("/admin/keys", json={"name": "no token"})
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    token = browser.get("/console/session").json()["csrf_token"]
    wrong = browser.post("/admin/keys", json={"name": "bad"}, headers={"x-csrf-token": "x" + token})
    assert wrong.status_code == 403
    odd = browser.post(
        "/admin/keys", json={"name": "bad"}, headers={b"x-csrf-token": "é".encode("latin-1")}
    )
    assert odd.status_code == 403
    made = browser.post("/admin/keys", json={"name": "with token"}, headers={"x-csrf-token": token})
    assert made.status_code == 201
    assert made.json()["secret"].startswith("wg-")


def test_a_key_sent_with_the_cookie_is_judged_alone(
    seeded: SeededEdge, browser: httpx.Client
) -> None:
    assert browser.get("/admin/reports/fleet").status_code == 200
    wrong = browser.get("/admin/reports/fleet", headers={"authorization": "Bearer wg-wrong"})
    assert wrong.status_code == 401
    _, secret = seeded.edge.create_key(name="user")
    user = browser.get("/admin/reports/fleet", headers={"authorization": f"Bearer {secret}"})
    assert user.status_code == 403


def test_the_report_endpoints_answer_the_admin_key_and_refuse_others(seeded: SeededEdge) -> None:
    _, secret = seeded.edge.create_key(name="reader")
    for path in ("/admin/reports/usage", "/admin/reports/latency", "/admin/reports/fleet"):
        assert seeded.edge.admin("GET", path).status_code == 200, path
        assert seeded.edge.get(path, secret).status_code == 403, path
        assert seeded.edge.http.get(path).status_code == 401, path


def test_a_session_from_one_edge_holds_on_another_with_the_same_admin_key(
    browser: httpx.Client, tmp_path: Path
) -> None:
    cookie = browser.cookies[SESSION_COOKIE]
    cluster = sim_cluster(time_scale=0.01)
    try:
        other = edge_settings(f"sqlite:///{tmp_path / 'other.db'}", cluster.urls)
        for environ, status in (({}, 200), ({"WG_ADMIN_KEY": "wg-another-admin-key"}, 401)):
            with running_edge(other, environ) as edge:
                http = edge.http
                http.cookies.set(SESSION_COOKIE, cookie)
                assert http.get("/admin/reports/fleet").status_code == status
    finally:
        cluster.stop()


def test_sessions_hold_on_every_edge_with_the_same_admin_key(browser: httpx.Client) -> None:
    cookie = browser.cookies[SESSION_COOKIE]
    same = ConsoleSessions(ADMIN_KEY)
    assert same.verify(cookie) is not None
    assert ConsoleSessions("wg-another-admin-key").verify(cookie) is None
    assert ConsoleSessions(None).verify(cookie) is None


def test_a_session_ends_at_its_expiry_and_a_forged_one_never_starts() -> None:
    now = [1_800_000_000.0]
    sessions = ConsoleSessions(ADMIN_KEY, ttl_s=60, clock=lambda: now[0])
    cookie, session = sessions.issue()
    assert sessions.verify(cookie) == session
    expires, sid, signature = cookie.split(".")
    assert sessions.verify(f"{int(expires) + 3600}.{sid}.{signature}") is None
    assert sessions.verify(cookie + "x") is None
    assert sessions.verify(f"²{expires}.{sid}.{signature}") is None
    assert sessions.verify("é.é.é") is None
    now[0] += 60
    assert sessions.verify(cookie) is None


def test_a_garbled_session_cookie_is_no_session(seeded: SeededEdge) -> None:
    for value in (b"\xe9.\xe9.\xe9", b"1.2", b"", b"....", b"99999999999.x.y"):
        cookie = b"warmgate_console=" + value
        answer = seeded.edge.http.get("/admin/reports/fleet", headers={b"cookie": cookie})
        assert answer.status_code == 401, value
        assert answer.json()["error"]["code"] == "invalid_api_key"


def test_logout_clears_the_session(browser: httpx.Client) -> None:
    token = browser.get("/console/session").json()["csrf_token"]
    answer = browser.post("/console/logout", data={"csrf_token": token})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/console/login"
    assert browser.get("/console/session").status_code == 401


def test_usage_report_and_its_csv_hold_the_seeded_days(
    seeded: SeededEdge, browser: httpx.Client
) -> None:
    days = seeded.days
    query = {"start": day_label(days[0]), "end": day_label(days[-1] + DAY_S), "bucket": "day"}
    report = browser.get("/admin/reports/usage", params={**query, "group_by": "key"}).json()
    expected = expected_usage(seeded.rows, lambda r: r.key_id)
    drawn = {
        (s["group"], p["t"]): (p["requests"], p["billed_requests"], p["revenue_micro_usd"])
        for s in report["series"]
        for p in s["points"]
    }
    assert drawn == {k: v for k, v in expected.items() if days[0] <= k[1] <= days[-1]}
    assert {g["group"]: g["name"] for g in report["groups"]} == seeded.names
    download = browser.get(
        "/admin/reports/usage", params={**query, "group_by": "key", "format": "csv"}
    )
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"].startswith("attachment;")
    lines = list(csv.DictReader(io.StringIO(download.text)))
    assert len(lines) == len(drawn)
    assert sum(int(line["requests"]) for line in lines) == sum(v[0] for v in drawn.values())
    assert {line["name"] for line in lines} == set(seeded.names.values())


def test_bad_report_queries_get_openai_errors_naming_the_parameter(
    seeded: SeededEdge,
) -> None:
    for query, param in (
        ({"bucket": "minute"}, "bucket"),
        ({"group_by": "colour"}, "group_by"),
        ({"top": "0"}, "top"),
        ({"start": "yesterday"}, "start"),
        ({"start": "2026-01-02", "end": "2026-01-01"}, "start"),
        ({"start": "2020-01-01", "end": "2026-01-01"}, "bucket"),
        ({"surprise": "1"}, None),
    ):
        answer = seeded.edge.admin("GET", "/admin/reports/usage", params=query)
        assert answer.status_code == 400, (query, answer.text)
        error = answer.json()["error"]
        assert error["type"] == "invalid_request_error"
        if param is not None:
            assert error["param"] == param, (query, error)


def test_assets_are_served_by_the_edge_with_etags(seeded: SeededEdge) -> None:
    http = seeded.edge.http
    script = http.get("/console/assets/charts.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    again = http.get("/console/assets/charts.js", headers={"if-none-match": script.headers["etag"]})
    assert again.status_code == 304
    assert http.get("/console/assets/vendor/swagger-ui/LICENSE").status_code == 200
    missing = http.get("/console/assets/nothing.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "invalid_request_error"
