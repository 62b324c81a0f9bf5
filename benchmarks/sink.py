"""Sink throughput: rows/s stored through the sink's own write path, side by side with a plain
COPY of the same rows into the same tables in transactions of the same size (the ceiling).

200 k realistic events (the synthetic generator through the shared intake), grouped into
messages the way ingest publishes them (one beacon = one session's batch, 5-40 events). The
sink path is ``SinkHandler.handle`` on each encoded message: decode, the contract checked on
the typed event, ``COPY`` straight into the tables (through staging tables and ``INSERT … ON
CONFLICT DO NOTHING`` only when some events are stored already), one transaction per message.
The ceiling renders the rows ahead and only runs ``COPY … FROM STDIN`` per message transaction.
The ceiling and the sink take turns for three rounds, and the medians are compared. Then a smaller
end-to-end run goes through the stack's relay (push bodies) into the real sink server.
Last line: ``sink: <N> rows/s, ceiling <M> rows/s, ratio <N/M>``.
"""

from __future__ import annotations

import io
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "functions" / "sink"))

from sqlalchemy import text  # noqa: E402

from shared.contract.intake import Intake  # noqa: E402
from shared.contract.stored_event import StoredEvent  # noqa: E402
from shared.contract.validation import EventValidator  # noqa: E402
from shared.policy.privacy import Pseudonymiser  # noqa: E402
from shared.policy.sampling import SamplingPolicy  # noqa: E402
from shared.pubsub.message import encode_batches, message_attributes  # noqa: E402
from shared.settings import DEV_PSEUDONYM_KEY, parse_keyring  # noqa: E402
from shared.storage.hot.copy_format import copy_text  # noqa: E402
from shared.storage.hot.engine import make_engine  # noqa: E402
from shared.storage.hot.tables import api_calls_log, telemetry_events, written_columns  # noqa: E402
from shared.storage.hot.writer import split_rows  # noqa: E402
from telemetry_cli.generator import EventGenerator  # noqa: E402
from telemetry_cli.stack.devstack import StackOptions, running_stack  # noqa: E402

TOTAL = int(os.environ.get("BENCH_SINK_EVENTS", "200000"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
E2E = int(os.environ.get("BENCH_SINK_E2E_EVENTS", "30000"))


def make_messages(total: int, seed: int) -> list[list[StoredEvent]]:
    """Messages of stored events, one per generated session (as ingest publishes beacons)."""
    generator = EventGenerator(seed=seed)
    intake = Intake(
        EventValidator(), SamplingPolicy({}), Pseudonymiser(parse_keyring(DEV_PSEUDONYM_KEY))
    )
    now = datetime.now(UTC)
    messages: list[list[StoredEvent]] = []
    count = 0
    while count < total:
        session = generator.session()[: total - count]
        accepted = intake.process_events(session, {}, now).accepted
        messages.append(accepted)
        count += len(accepted)
    return messages


def truncate(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE telemetry_events, api_calls_log"))


def count(engine) -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT (SELECT count(*) FROM telemetry_events) + (SELECT count(*) FROM api_calls_log)"
                )
            ).scalar()
            or 0
        )


def ceiling_run(engine, messages: list[list[StoredEvent]]) -> float:  # type: ignore[no-untyped-def]
    rendered = []
    for events in messages:
        event_rows, call_rows = split_rows(events)
        rendered.append(
            (
                copy_text(event_rows) if event_rows else None,
                copy_text(call_rows) if call_rows else None,
            )
        )
    event_cols = ", ".join(written_columns(telemetry_events))
    call_cols = ", ".join(written_columns(api_calls_log))
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        started = time.perf_counter()
        for event_data, call_data in rendered:
            if event_data:
                cursor.execute(
                    f"COPY telemetry_events ({event_cols}) FROM STDIN",
                    stream=io.BytesIO(event_data),
                )
            if call_data:
                cursor.execute(
                    f"COPY api_calls_log ({call_cols}) FROM STDIN", stream=io.BytesIO(call_data)
                )
            raw.commit()
        return time.perf_counter() - started
    finally:
        raw.close()


def sink_run(engine, messages: list[list[StoredEvent]]) -> float:  # type: ignore[no-untyped-def]
    from sink_logic import SinkHandler

    from shared.pubsub.push import PushedMessage
    from shared.storage.hot.writer import write_events

    dead: list[bytes] = []
    from shared.contract.stored_check import StoredEventCheck

    handler = SinkHandler(
        lambda events: write_events(engine, events),
        StoredEventCheck(),
        lambda data, attrs: dead.append(data),
    )
    encoded = []
    for i, events in enumerate(messages):
        for body, n in encode_batches(events):
            encoded.append(PushedMessage(body, message_attributes(n, "dev", "bench"), f"m-{i}"))
    started = time.perf_counter()
    for message in encoded:
        handler.handle(message)
    elapsed = time.perf_counter() - started
    assert not dead, f"{len(dead)} messages dead-lettered"
    return elapsed


def e2e_run(stack, engine, messages: list[list[StoredEvent]]) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    from shared.pubsub.publisher import EventPublisher
    from shared.settings import get_settings
    from telemetry_cli.stack.functions import running_function
    from telemetry_cli.stack.relay import sink_relay

    expected = sum(len(m) for m in messages)
    with (
        tempfile.TemporaryDirectory() as logs,
        running_function("sink", stack.env(), Path(logs)) as url,
    ):
        relay = sink_relay(stack.options.project, url).start()
        publisher = EventPublisher(get_settings())
        started = time.perf_counter()
        for events in messages:
            publisher.publish(events, "bench")
        deadline = time.monotonic() + 600
        stored = 0
        while time.monotonic() < deadline:
            stored = count(engine)
            if stored >= expected:
                break
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        relay.stop()
    return elapsed, stored


def main() -> None:
    print(f"generating {TOTAL} events ...", flush=True)
    messages = make_messages(TOTAL, seed=7)
    sizes = [len(m) for m in messages]
    print(
        f"{len(messages)} messages, {sum(sizes) / len(messages):.1f} events per message on average"
    )
    with tempfile.TemporaryDirectory(prefix="bench-sink-") as tmp:
        options = StackOptions(state_dir=Path(tmp), with_functions=False, persistent=False)
        with running_stack(options) as stack:
            assert stack.database_url is not None
            engine = make_engine(stack.database_url, pre_ping=False)  # as the sink runs it
            # The two take turns for ROUNDS rounds and the medians are compared: this machine
            # is noisy (one round of each has swung the ratio by 0.3 either way).
            ceilings, sinks = [], []
            for turn in range(ROUNDS):
                truncate(engine)
                ceilings.append(ceiling_run(engine, messages))
                assert count(engine) == TOTAL
                truncate(engine)
                sinks.append(sink_run(engine, messages))
                assert count(engine) == TOTAL, count(engine)
                print(
                    f"round {turn + 1}: ceiling {TOTAL / ceilings[-1]:.0f} rows/s, "
                    f"sink {TOTAL / sinks[-1]:.0f} rows/s, ratio {ceilings[-1] / sinks[-1]:.2f}",
                    flush=True,
                )
            ceiling_s, sink_s = statistics.median(ceilings), statistics.median(sinks)
            again_s = sink_run(engine, messages[: len(messages) // 10])  # redelivered: no new rows
            assert count(engine) == TOTAL
            truncate(engine)
            e2e_messages = make_messages(E2E, seed=8)
            e2e_s, e2e_rows = e2e_run(stack, engine, e2e_messages)
            engine.dispose()
    ceiling = TOTAL / ceiling_s
    sink = TOTAL / sink_s
    print(
        f"ceiling: plain COPY, one transaction per message     {ceiling:9.0f} rows/s ({ceiling_s:.1f} s)"
    )
    print(
        f"sink:    decode + check + COPY (+ ON CONFLICT on dups) {sink:9.0f} rows/s ({sink_s:.1f} s)"
    )
    print(
        f"sink:    redelivered messages (all duplicates)        {TOTAL // 10 / again_s:9.0f} rows/s"
    )
    print(
        f"end to end through the stack's relay ({e2e_rows}/{E2E} rows): {e2e_rows / e2e_s:9.0f} rows/s ({e2e_s:.1f} s)"
    )
    print(f"goal: ratio >= 0.8 -> {'met' if sink / ceiling >= 0.8 else 'NOT met'}")
    print(f"sink: {sink:.0f} rows/s, ceiling {ceiling:.0f} rows/s, ratio {sink / ceiling:.2f}")


if __name__ == "__main__":
    main()
