"""The console in headless Chromium: sign in with the admin key, read every page's charts off
a seeded ledger, manage a key that the official SDK then uses, and reach nothing but the edge.

Each page's charts are checked point by point (`data-x`/`data-y` of every circle, `data-value`
of every bar) against the seeded rows; screenshots of every page land in
build/console-screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.console.browser import Watched, chromium, screenshot, watched_context
from tests.console.edge import (
    ADMIN_KEY,
    RECENT_CACHED_TOKENS,
    RECENT_PROMPT_TOKENS,
    SeededEdge,
    seeded_edge,
)
from tests.console.seed import day_label, expected_latency, expected_usage

WAIT_MS = 20_000


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededEdge]:
    path: Path = tmp_path_factory.mktemp("console-browser") / "warmgate.db"
    with seeded_edge(f"sqlite:///{path}") as seeded:
        yield seeded


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as browser:
        yield browser


@pytest.fixture
def watched(browser: Any, seeded: SeededEdge) -> Iterator[Watched]:
    with watched_context(browser, seeded.edge.server.root) as watched:
        yield watched
        assert watched.foreign == [], "the console asked another host"
        assert watched.requests, "nothing was loaded"


def sign_in(page: Any, key: str) -> Any:
    page.goto("/console")
    page.wait_for_url("**/console/login")
    page.fill("#key", key)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    return navigation.value


def wait_ready(page: Any, name: str) -> None:
    page.wait_for_selector(f"body[data-page-ready={name}]", timeout=WAIT_MS)
    assert page.inner_text("#error") == ""


def show(page: Any, name: str) -> None:
    page.click(f"nav a[data-page={name}]")
    wait_ready(page, name)


def points(page: Any, chart: str) -> dict[tuple[str, int], float]:
    marks = page.eval_on_selector_all(
        f"#{chart} circle.point",
        "cs => cs.map(c => [c.dataset.series, Number(c.dataset.x), Number(c.dataset.y)])",
    )
    return {(series, int(x)): y for series, x, y in marks}


def bars(page: Any, chart: str) -> dict[str, float | None]:
    marks = page.eval_on_selector_all(
        f"#{chart} rect.bar", "rs => rs.map(r => [r.dataset.label, r.dataset.value])"
    )
    return {label: None if value == "" else float(value) for label, value in marks}


def choose_seeded_days(page: Any, seeded: SeededEdge) -> None:
    page.select_option("#range-bucket", "day")
    wait_ready(page, "usage")
    page.select_option("#range-span", "custom")
    page.fill("#range-start", day_label(seeded.days[0]))
    page.fill("#range-end", day_label(seeded.days[-1]))
    page.dispatch_event("#range-end", "change")
    wait_ready(page, "usage")


def in_days(seeded: SeededEdge, t: int) -> bool:
    return seeded.days[0] <= t <= seeded.days[-1]


def test_a_wrong_key_and_a_user_key_are_refused_at_the_login_form(
    watched: Watched, seeded: SeededEdge
) -> None:
    page = watched.page()
    refused = sign_in(page, "wg-certainly-not-the-admin-key")
    assert refused.status == 401
    assert page.inner_text("#login-error") == "That is not the admin key."
    _, secret = seeded.edge.create_key(name="a user")
    page.fill("#key", secret)
    with page.expect_navigation() as navigation:
        page.click("button[type=submit]")
    assert navigation.value.status == 403
    assert "A user key cannot open the console" in page.inner_text("#login-error")
    page.goto("/console")
    page.wait_for_url("**/console/login")
    cookies = {c["name"] for c in watched.context.cookies()}
    assert "warmgate_console" not in cookies


def test_every_page_draws_the_seeded_ledger(watched: Watched, seeded: SeededEdge) -> None:
    page = watched.page()
    landed = sign_in(page, ADMIN_KEY)
    assert landed.status == 200
    page.wait_for_url("**/console")
    session = next(c for c in watched.context.cookies() if c["name"] == "warmgate_console")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"
    assert page.evaluate("() => document.cookie") == ""  # nothing a script can read
    assert page.evaluate("() => localStorage.length + sessionStorage.length") == 0
    wait_ready(page, "usage")
    choose_seeded_days(page, seeded)

    usage = expected_usage(seeded.rows, lambda r: r.model)
    for chart, index, scale in (
        ("chart-requests", 0, 1),
        ("chart-billed", 1, 1),
        ("chart-revenue", 2, 1e-6),
    ):
        drawn = points(page, chart)
        want = {
            (str(model), t): values[index] * scale
            for (model, t), values in usage.items()
            if in_days(seeded, t)
        }
        assert drawn == pytest.approx(want), chart
    screenshot(page, "usage")

    page.select_option("#usage-group", "key")
    wait_ready(page, "usage")
    by_key = expected_usage(seeded.rows, lambda r: r.key_id)
    drawn = points(page, "chart-requests")
    want = {
        (f"{seeded.names[str(key)]} ({key})", t): float(values[0])
        for (key, t), values in by_key.items()
        if in_days(seeded, t)
    }
    assert drawn == want
    table = page.inner_text("#usage-table")
    assert all(name in table for name in seeded.names.values())
    csv_link = page.get_attribute("#usage-csv", "href")
    assert csv_link is not None
    assert "format=csv" in csv_link
    with page.expect_download() as download:
        page.click("#usage-csv")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0] == "start,group,name,requests,billed_requests,revenue_usd"
    assert len(lines) - 1 == len(want)

    show(page, "latency")
    latency = expected_latency(seeded.rows, lambda r: r.model)
    for chart, metric in (
        ("chart-ttft", "ttft"),
        ("chart-total", "total"),
        ("chart-queue", "queue"),
    ):
        drawn = points(page, chart)
        figures_drawn: dict[tuple[str, int], float | None] = {
            (f"{model} {p}", t): figures[f"{metric}_{p}_ms"]
            for (model, t), figures in latency.items()
            for p in ("p50", "p95")
            if in_days(seeded, t)
        }
        assert drawn == pytest.approx(figures_drawn, abs=1e-3), chart
    screenshot(page, "latency")

    show(page, "fleet")
    backend = next(r.backend for r in seeded.rows if r.request_id == "req_recent_0")
    cache = bars(page, "chart-cache")
    assert cache[str(backend)] == pytest.approx(RECENT_CACHED_TOKENS / RECENT_PROMPT_TOKENS)
    load = bars(page, "chart-load")
    assert set(load) == set(cache)
    assert all(value == 0 for value in load.values())
    assert "healthy" in page.inner_text("#fleet-table")
    screenshot(page, "fleet")

    show(page, "keys")
    requests_by_key = bars(page, "chart-keys")
    in_range = {
        key: sum(v[0] for (k, t), v in by_key.items() if k == key and in_days(seeded, t))
        for key in seeded.key_ids
    }
    assert requests_by_key == {
        f"{seeded.names[key]} ({key})": float(count) for key, count in in_range.items()
    }
    screenshot(page, "keys")
    assert watched.errors == []


def test_a_key_made_in_the_console_serves_the_sdk_until_it_is_revoked_there(
    watched: Watched, seeded: SeededEdge
) -> None:
    page = watched.page()
    sign_in(page, ADMIN_KEY)
    wait_ready(page, "usage")
    show(page, "keys")
    assert page.locator("#key-secret").is_hidden()  # no secret box before a key is made
    page.fill("#key-create input[name=name]", "made in the browser")
    page.fill("#key-create input[name=rpm]", "600")
    page.click("#key-create button[type=submit]")
    page.wait_for_selector("#key-secret", state="visible", timeout=WAIT_MS)
    wait_ready(page, "keys")
    secret = page.inner_text("#key-secret-value")
    key_id = page.get_attribute("#key-secret-value", "data-key-id")
    assert secret.startswith("wg-")
    assert key_id is not None
    assert secret not in watched.requests[-1]  # never in a URL
    client = seeded.edge.sdk(secret)
    reply = client.chat.completions.create(
        model="demo", messages=[{"role": "user", "content": "Hello"}], max_tokens=4
    )
    assert reply.choices[0].message.content

    row = page.locator("#keys-table tr", has_text=key_id)
    row.get_by_role("button", name="Change limits").click()
    row.locator("input[name=rpm]").fill("120")
    row.get_by_role("button", name="Save limits").click()
    wait_ready(page, "keys")
    assert seeded.edge.admin("GET", f"/admin/keys/{key_id}").json()["rpm"] == 120

    row = page.locator("#keys-table tr", has_text=key_id)
    row.get_by_role("button", name="Revoke").click()
    row.get_by_role("button", name="Confirm revoke").click()
    wait_ready(page, "keys")
    assert "revoked" in page.locator("#keys-table tr", has_text=key_id).inner_text()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="demo", messages=[{"role": "user", "content": "Hello"}], max_tokens=4
        )
    page.click("#logout button")
    page.wait_for_url("**/console/login")
    assert "warmgate_console" not in {c["name"] for c in watched.context.cookies()}
    assert watched.errors == []


def test_the_api_reference_renders_every_operation_from_local_assets(watched: Watched) -> None:
    page = watched.page()
    document = page.request.get("/openapi.json").json()
    operations = sum(
        1
        for item in document["paths"].values()
        for method in item
        if method in {"get", "post", "patch", "delete", "put"}
    )
    page.goto("/docs")
    page.wait_for_selector(".opblock", timeout=WAIT_MS)
    assert page.locator(".opblock").count() == operations
    assert page.locator(".opblock-summary-path", has_text="/admin/reports/usage").count() == 1
    screenshot(page, "docs")
    assert watched.errors == []
