"""The OTLP report's counts: bounded names, a bounded tally, and the report built from them."""

from __future__ import annotations

from datetime import UTC, datetime

from shared.contract.otlp import decode_json
from shared.contract.otlp_report import OTHER, OtlpTally, attribute_name
from shared.contract.pipeline_events import OTLP_EVENT, otlp_events
from shared.llm import genai
from telemetry_cli.otlp_report import build_report, render_text
from tests.unit.llm.test_token_rules import FIXTURES

SINCE = datetime(2026, 12, 1, tzinfo=UTC)


def test_numbered_attribute_names_count_as_one() -> None:
    assert attribute_name("gen_ai.prompt.3.content") == "gen_ai.prompt.N.content"
    assert attribute_name("llm.input_messages.12") == "llm.input_messages.N"
    assert attribute_name("tool[4].args") == "toolN.args"
    assert attribute_name("http.status_code") == "http.status_code"
    assert len(attribute_name("x" * 500)) == 128


def test_a_tally_keeps_at_most_its_rows_and_adds_the_rest_to_other() -> None:
    tally = OtlpTally(max_rows=2)
    tally.add({("s", "1", "dropped_attribute", "a"): 1, ("s", "1", "dropped_attribute", "b"): 1})
    tally.add({("s", "1", "dropped_attribute", "c"): 5, ("s", "1", "dropped_attribute", "a"): 1})
    rows = tally.take()
    assert rows[("s", "1", "dropped_attribute", "a")] == 2
    assert rows[("s", "1", "dropped_attribute", OTHER)] == 5
    assert tally.take() == {}


def test_the_decoder_keeps_dropped_names_and_event_counts_never_values() -> None:
    spans = decode_json((FIXTURES / "genai_openlit_anthropic.json").read_bytes(), genai.wanted)
    call = next(s for s in spans if s.scope_name.startswith("openlit"))
    assert (
        "gen_ai.input.messages" in call.dropped and "gen_ai.input.messages" not in call.attributes
    )
    assert all(isinstance(name, str) for name in call.dropped)


def test_pipeline_events_and_the_report_built_from_their_rows() -> None:
    rows = {
        ("lib.a", "1.0", "spans", ""): 5,
        ("lib.a", "1.0", "calls", ""): 4,
        ("lib.a", "1.0", "refused", "gen_ai.request.model"): 1,
        ("lib.a", "1.0", "dropped_attribute", "gen_ai.input.messages"): 4,
        ("lib.b", "", "spans", ""): 1,
        ("lib.b", "", "not_genai", ""): 1,
        ("lib.b", "", "span_events", ""): 0,
    }
    events = otlp_events(rows, SINCE, "i-1")
    assert len(events) == 6 and {e.name for e in events} == {OTLP_EVENT}  # zero counts left out
    report = build_report(
        (
            e.props["otlp_scope"],
            e.props["otlp_scope_version"],
            e.props["measure"],
            e.props["item"],
            e.props["occurrences"],
        )
        for e in events
    )
    first, second = report
    assert (first.scope, first.totals["spans"], first.totals["calls"]) == ("lib.a", 5, 4)
    assert first.items["refused"] == {"gen_ai.request.model": 1}
    assert second.totals["not_genai"] == 1
    text = render_text(report, SINCE, top=1)
    assert "lib.a 1.0" in text and "lib.b (no version)" in text
    assert "attributes dropped, by name (1):" in text and "gen_ai.input.messages" in text
    assert render_text([], SINCE, 5).startswith("no OTLP exports since")


def test_long_names_are_cut_to_what_a_pipeline_event_holds() -> None:
    """Regression: a refusing field named from outside (a long prop path) made a
    pipeline.otlp event the sink refused, so the interval's counts were dead-lettered."""
    from shared.contract.stored_check import StoredEventCheck
    from shared.contract.stored_event import StoredEvent

    tally = OtlpTally()
    tally.add({("s" * 300, "v" * 100, "refused", "events[0].props." + "x" * 300): 1})
    (event,) = otlp_events(tally.take(), SINCE, "i-1")
    StoredEventCheck().check(event)  # what the sink applies: no ContractViolation
    assert isinstance(event, StoredEvent) and len(event.props["item"]) == 128
