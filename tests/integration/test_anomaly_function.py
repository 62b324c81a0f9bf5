"""The anomaly function under functions-framework on the real services: alerts reach a local
webhook and the ``telemetry-alerts`` topic once each, a webhook that is down is retried without
holding up the topic, and a metric that fails to evaluate does not stop the others."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.contract.registry import default_registry
from shared.metrics.catalog import Catalog, default_catalog
from shared.metrics.deliver import Deliverer
from shared.metrics.run import AnomalyRun, runner_factory
from shared.metrics.store import AlertStore
from shared.pubsub import resources
from shared.pubsub.alerts import alert_sender
from telemetry_cli.generator import Incident
from telemetry_cli.history import fill_history
from tests.integration.alert_sinks import Webhook, webhook_server
from tests.integration.tiers import Warm, fresh_tiers

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
LLM_ALERTS = {"llm_error_rate", "llm_success_pct"}


@pytest.fixture
def failing_llm(services: Any, tmp_path: Path) -> Iterator[Warm]:
    """Eight hours of traffic whose last four hours have a fifth of LLM calls failing."""
    with fresh_tiers(services, tmp_path) as tiers:
        incident = Incident("llm_errors", NOW - timedelta(hours=4), NOW + timedelta(hours=1))
        fill_history(tiers.engine, tiers.settings, NOW - timedelta(hours=8), NOW, 40, [incident])
        yield tiers


def post(url: str, body: Any) -> tuple[int, dict[str, Any]]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def llm_texts(hook: Webhook) -> list[str]:
    return [t for t in hook.texts() if any(f" {name} " in t for name in LLM_ALERTS)]


def test_alerts_reach_the_webhook_and_the_topic_once(
    services: Any, failing_llm: Warm, function_server: Any, topic_tap: Any, tmp_path: Path
) -> None:
    with (
        webhook_server() as hook,
        topic_tap(services.options.project, resources.TOPIC_ALERTS) as tap,
    ):
        env = {
            **services.env(),
            "DATABASE_URL": failing_llm.settings.database_url.get_secret_value(),
            "TELEMETRY_BUCKET": failing_llm.settings.telemetry_bucket,
            "TELEMETRY_ALERT_WEBHOOK_URL": hook.url,
            "TELEMETRY_RUNBOOK_BASE_URL": "https://runbooks.example/",
            "TELEMETRY_LOG_LEVEL": "INFO",
        }
        with function_server("anomaly", env, tmp_path) as url:
            status, report = post(url, {"action": "evaluate"})
            assert status == 200, report
            assert set(report["firing"]) >= LLM_ALERTS, report
            texts = llm_texts(hook)
            assert len(texts) == 2, hook.texts()
            assert all(t.startswith("[FIRING critical]") for t in texts), texts
            errors = next(t for t in texts if "llm_error_rate" in t)
            assert "threshold > 2 percent" in errors and "over 3h, n=" in errors
            body = next(b for b in hook.received if "llm_error_rate" in b["text"])
            assert "https://runbooks.example/llm-errors.md" in json.dumps(body["blocks"])

            messages = [json.loads(m.data) for m in tap.pull_all(expected=2)]
            messages += [json.loads(m.data) for m in tap.drain(2.0)]
            fired = [m for m in messages if m["alert"] in LLM_ALERTS]
            assert len(fired) == 2, messages
            details = next(m for m in fired if m["alert"] == "llm_error_rate")["details"]
            assert details["kind"] == "firing" and details["window"] == "3h"
            assert details["threshold"] == 2 and details["value"] > 2 and details["n"] >= 300
            assert details["runbook"] == "https://runbooks.example/llm-errors.md"

            # A second run within the same grain sends nothing again.
            status, again = post(url, {})
            assert status == 200 and again["delivery"]["sent"] == {"webhook": 0, "topic": 0}
            assert len(llm_texts(hook)) == 2
            assert not [m for m in tap.drain(1.5) if m.attributes["alert"] in LLM_ALERTS]

            status, states = post(url, {"action": "status"})
            assert status == 200
            assert states["alerts"]["llm_error_rate"]["status"] == "firing"
        logged = "".join(p.read_text() for p in tmp_path.glob("*.log"))
        assert "anomaly run" in logged and "alert sent" in logged


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"not json", 400, "not JSON"),
        ({"action": "panic"}, 400, "one of"),
        ({"action": "evaluate", "metrics": ["no_such_metric"]}, 400, "unknown metrics"),
        ({"action": "evaluate", "metrics": "llm_error_rate"}, 400, "body.metrics: Expected `array"),
    ],
)
def test_bad_requests_say_what_is_wrong(
    services: Any,
    function_server: Any,
    tmp_path_factory: pytest.TempPathFactory,
    body: Any,
    status: int,
    says: str,
) -> None:
    with function_server("anomaly", services.env(), tmp_path_factory.mktemp("anomaly")) as url:
        got, answer = post(url, body)
    assert got == status and says in answer["error"], answer


def _run(tiers: Warm, hook: Webhook, catalog: Catalog, probes: dict[str, Any]) -> AnomalyRun:
    store = AlertStore(tiers.engine)
    deliverer = Deliverer(store, alert_sender(tiers.settings), hook.url, attempts=3, max_wait_s=0.2)
    registry = default_registry()
    return AnomalyRun(
        tiers.settings,
        catalog,
        registry,
        store,
        deliverer,
        runner_factory(tiers.settings, tiers.engine, registry),
        probes,
    )


def test_a_webhook_that_is_down_is_retried_and_the_topic_still_gets_every_alert(
    services: Any, failing_llm: Warm, topic_tap: Any
) -> None:
    catalog = Catalog(metrics=tuple(m for m in default_catalog() if m.name in LLM_ALERTS))
    with (
        webhook_server() as hook,
        topic_tap(services.options.project, resources.TOPIC_ALERTS) as tap,
    ):
        hook.down = True
        run = _run(failing_llm, hook, catalog, {})
        report = run.run(now=NOW)
        assert report.delivery.sent == {"webhook": 0, "topic": 2}
        assert report.delivery.failed == {"webhook": 2, "topic": 0}
        assert hook.refused == 6  # three attempts for each of the two alerts
        assert len(tap.pull_all(expected=2)) == 2
        pending = run.store.pending()
        assert [r.pending for r in pending] == [("webhook",), ("webhook",)]
        assert all(r.attempts == 1 for r in pending)

        hook.down = False
        later = run.run(now=NOW + timedelta(minutes=1))  # same grain: no new evaluation
        assert later.delivery.sent == {"webhook": 2, "topic": 0}
        assert len(llm_texts(hook)) == 2 and run.store.pending() == []
        assert tap.drain(1.5) == []


def test_a_metric_that_fails_to_evaluate_alerts_and_does_not_stop_the_others(
    failing_llm: Warm,
) -> None:
    def broken_probe() -> float:
        raise ConnectionResetError("the probe's service went away")

    names = LLM_ALERTS | {"snapshot_lag"}
    catalog = Catalog(metrics=tuple(m for m in default_catalog() if m.name in names))
    with webhook_server() as hook:
        run = _run(failing_llm, hook, catalog, {"snapshot_lag_hours": broken_probe})
        report = run.run(now=NOW)
        outcomes = {o.metric: o for o in report.outcomes}
        assert outcomes["snapshot_lag"].failed
        assert outcomes["snapshot_lag"].observation.error == "ConnectionResetError"
        assert outcomes["snapshot_lag"].alert.condition == "error"
        assert {o.metric for o in report.outcomes if o.alert.status == "firing"} == LLM_ALERTS
        failed_texts = [t for t in hook.texts() if t.startswith("[EVALUATION FAILED]")]
        assert failed_texts == [
            "[EVALUATION FAILED] snapshot_lag could not be evaluated (ConnectionResetError)"
        ]
        # Still failing on the next evaluation: no second notice; recovered: one notice.
        run.probes = {"snapshot_lag_hours": broken_probe}
        run.run(now=NOW + timedelta(minutes=15))
        run.probes = {"snapshot_lag_hours": lambda: 1.0}
        run.run(now=NOW + timedelta(minutes=30))
        texts = [t for t in hook.texts() if "snapshot_lag" in t]
        assert texts == [
            "[EVALUATION FAILED] snapshot_lag could not be evaluated (ConnectionResetError)",
            "[EVALUATION RECOVERED] snapshot_lag evaluates again",
        ]


def test_the_anomaly_role_granted_by_migrate_can_do_its_whole_job(failing_llm: Warm) -> None:
    import uuid

    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from shared.metrics.materialize import refresh_views
    from shared.storage.hot.engine import grant_anomaly, make_engine

    role = f"anomaly_fn_{uuid.uuid4().hex[:8]}"  # roles are the cluster's, not the database's
    with failing_llm.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {role} LOGIN"))
    grant_anomaly(failing_llm.engine, role)
    grant_anomaly(failing_llm.engine, role)  # idempotent
    url = make_url(failing_llm.settings.database_url.get_secret_value()).set(username=role)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        catalog = Catalog(metrics=tuple(m for m in default_catalog() if m.name in LLM_ALERTS))
        store = AlertStore(engine)
        registry = default_registry()
        with webhook_server() as hook:
            run = AnomalyRun(
                failing_llm.settings,
                catalog,
                registry,
                store,
                Deliverer(store, lambda *_: None, hook.url),
                runner_factory(failing_llm.settings, engine, registry),
                {},
            )
            report = run.run(now=NOW)
        assert {o.metric for o in report.outcomes if o.alert.status == "firing"} == LLM_ALERTS
        assert report.delivery.sent["webhook"] == 2
        assert set(refresh_views(engine, catalog, registry).values()) == {"created"}
        assert set(refresh_views(engine, catalog, registry).values()) == {"refreshed"}
    finally:
        engine.dispose()


@pytest.fixture
def runaway_user(services: Any, tmp_path: Path) -> Iterator[Warm]:
    """A day of traffic whose last six hours have one user running half of all sessions."""
    with fresh_tiers(services, tmp_path) as tiers:
        incident = Incident("runaway_user", NOW - timedelta(hours=6), NOW + timedelta(hours=1))
        fill_history(tiers.engine, tiers.settings, NOW - timedelta(hours=26), NOW, 50, [incident])
        yield tiers


def test_a_grouped_alert_names_the_runaway_users_pseudonym_once_in_the_live_run(
    runaway_user: Warm, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The live run on the real hot tier: the runaway user's spend fires one alert naming its
    pseudonym (never the raw id), its state is kept per group, and a rerun sends nothing."""
    from shared.policy.privacy import Pseudonymiser
    from telemetry_cli.generator import RUNAWAY_USER

    catalog = Catalog(metrics=(default_catalog().get("llm_spend_per_user"),))
    pseudonym = Pseudonymiser(runaway_user.settings.pseudonym_keys).pseudonym(RUNAWAY_USER)[1]
    with webhook_server() as hook:
        run = _run(runaway_user, hook, catalog, {})
        first = run.run(now=NOW)
        outcome = first.outcomes[0].to_json()
        assert outcome["groups_firing"] == [pseudonym], outcome
        assert first.to_json()["firing"] == ["llm_spend_per_user"]
        texts = hook.texts()
        assert len(texts) == 1 and pseudonym[:16] in texts[0] and RUNAWAY_USER not in texts[0]
        state = run.store.states()["llm_spend_per_user"]
        assert state.groups[pseudonym].status == "firing"
        assert run.run(now=NOW + timedelta(minutes=5)).delivery.sent == {"webhook": 0, "topic": 0}
        sent = run.store.sent()
        assert [(r["kind"], r["metric"]) for r in sent] == [("firing", "llm_spend_per_user")]
    # `telemetry metrics check` shows the group's alert, and does not judge the whole's value
    # by a threshold meant for one user.
    from click.testing import CliRunner

    from shared.settings import reset_settings
    from shared.storage.hot.engine import dispose_engine
    from telemetry_cli.cli import cli

    assert runaway_user.settings.database_url is not None
    monkeypatch.setenv("DATABASE_URL", runaway_user.settings.database_url.get_secret_value())
    reset_settings()
    dispose_engine()
    try:
        result = CliRunner().invoke(
            cli, ["metrics", "check", "--metric", "llm_spend_per_user", "--json"]
        )
    finally:
        reset_settings()
        dispose_engine()
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert row["alert"] == "firing for 1 user_key(s)" and row["level"] == "-"
    assert row["groups_firing"] == [pseudonym[:16]]
