"""Reading W3C `traceparent`/`tracestate` as the trace-context recommendation asks."""

from __future__ import annotations

import pytest

from warmgate.proxy.observability.tracing import PassedThrough, parse_trace_context

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
VALID = f"00-{TRACE_ID}-{PARENT_ID}-01"


def test_a_valid_traceparent_and_its_tracestate_are_read() -> None:
    context = parse_trace_context(f" {VALID} ", "rojo=00f067aa0ba902b7")
    assert context is not None
    assert (context.trace_id, context.parent_id, context.flags) == (TRACE_ID, PARENT_ID, "01")
    assert context.traceparent == VALID
    assert context.state == "rojo=00f067aa0ba902b7"


@pytest.mark.parametrize(
    "traceparent",
    [
        "",
        "00-" + TRACE_ID + "-" + PARENT_ID,  # no flags
        f"00-{'0' * 32}-{PARENT_ID}-01",  # all-zero trace id
        f"00-{TRACE_ID}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE_ID}-{PARENT_ID}-01",  # version ff is forbidden
        f"00-{TRACE_ID.upper()}-{PARENT_ID}-01",  # upper case hex
        f"00-{TRACE_ID}-{PARENT_ID}-01-extra",  # version 00 has exactly four fields
        f"00_{TRACE_ID}_{PARENT_ID}_01",
        f"0g-{TRACE_ID}-{PARENT_ID}-01",
    ],
)
def test_an_invalid_traceparent_is_ignored_with_its_tracestate(traceparent: str) -> None:
    assert parse_trace_context(traceparent, "rojo=1") is None


def test_a_later_version_is_read_for_its_version_00_fields() -> None:
    context = parse_trace_context(f"01-{TRACE_ID}-{PARENT_ID}-01-future", None)
    assert context is not None
    assert context.traceparent == VALID  # passed on as version 00, which we speak
    assert parse_trace_context(f"01-{TRACE_ID}-{PARENT_ID}-01x", None) is None


def test_an_oversized_tracestate_is_dropped_and_the_rest_passes_through() -> None:
    context = parse_trace_context(VALID, "a=" + "x" * 600)
    assert context is not None
    assert context.state is None
    passed = PassedThrough(context)
    assert passed.trace_id == TRACE_ID
    assert dict(passed.upstream_headers(passed.span("connect"))) == {"traceparent": VALID}
