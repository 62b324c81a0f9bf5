"""Terraform checked offline: fmt, checkov, and the HCL wiring against the contract in shared/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import hcl2
import pytest

from shared.policy.retention import (
    COLD_ARCHIVE_AFTER_DAYS,
    COLD_RETENTION_DAYS,
    WARM_RETENTION_DAYS,
)
from shared.pubsub import resources as names

ROOT = Path(__file__).resolve().parents[2]
TF = ROOT / "terraform"
MODULES = sorted(p for p in (TF / "modules").iterdir() if p.is_dir())
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/main.py"))
TF_ENV = {**os.environ, "CHECKPOINT_DISABLE": "1", "TF_CLI_CONFIG_FILE": os.devnull}


CHECKOV = ROOT / ".tools" / "checkov" / "bin" / "checkov"


def _plain(value: Any) -> Any:
    """python-hcl2 8 keeps HCL's quotes on keys and strings and marks blocks; drop both."""
    if isinstance(value, dict):
        return {_unquote(k): _plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return _unquote(value) if isinstance(value, str) else value


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('\\"', '"')
    return text


def load(path: Path) -> dict[str, Any]:
    with path.open() as handle:
        return _plain(hcl2.load(handle))


def one(value: Any) -> Any:
    """python-hcl2 wraps attribute values in one-element lists."""
    while isinstance(value, list) and len(value) == 1:
        value = value[0]
    return value


def blocks(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get(kind, []):
        out.update(item)
    return out


def resources(doc: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    """Every ``resource "<kind>" "<name>"`` of a file, by name."""
    out: dict[str, dict[str, Any]] = {}
    for item in doc.get("resource", []):
        for name, body in item.get(kind, {}).items():
            out[name] = body
    return out


def optional_default(type_expr: str, field: str) -> float:
    match = re.search(rf"{field}\W+\s*[:=]\s*'?\$?{{?optional\(\w+,\s*([0-9.]+)\)", type_expr)
    assert match, f"{field} has no optional() default"
    return float(match.group(1))


@pytest.mark.needs_terraform
def test_terraform_fmt_is_clean() -> None:
    assert shutil.which("terraform"), "terraform is missing (it is in the machine image)"
    done = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", str(TF)],
        env=TF_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"unformatted: {done.stdout}{done.stderr}"


def test_checkov_has_zero_failed_checks_and_every_skip_has_a_reason() -> None:
    assert CHECKOV.exists(), "checkov's tool environment is missing: run `make setup`"
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(TF),
            "--framework",
            "terraform",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ],
        env=TF_ENV,
        capture_output=True,
        text=True,
        check=False,
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    assert summary["failed"] == 0, [c["check_id"] for c in report["results"]["failed_checks"]]
    assert summary["passed"] > 30
    for skipped in report["results"]["skipped_checks"]:
        assert len((skipped.get("check_result") or {}).get("suppress_comment", "")) > 20, skipped[
            "check_id"
        ]


@pytest.mark.parametrize("module", MODULES, ids=lambda p: p.name)
def test_module_layout_and_every_input_is_described_and_validated(module: Path) -> None:
    for part in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"):
        assert (module / part).exists(), f"{module.name} lacks {part}"
    variables = blocks(load(module / "variables.tf"), "variable")
    assert variables
    for name, body in variables.items():
        assert one(body.get("description")), f"{module.name}.{name} has no description"
        assert body.get("validation"), f"{module.name}.{name} has no validation"
    assert "```hcl" in (module / "README.md").read_text(), f"{module.name} README has no example"
    for output in blocks(load(module / "outputs.tf"), "output").values():
        assert one(output.get("description"))


def test_root_inputs_are_described_and_validated() -> None:
    for name, body in blocks(load(TF / "variables.tf"), "variable").items():
        assert one(body.get("description")) and body.get("validation"), name


@pytest.mark.parametrize("function", FUNCTIONS)
def test_every_function_is_deployed_with_its_entry_point_and_trigger(function: str) -> None:
    modules = blocks(load(TF / "main.tf"), "module")
    deployment = modules.get(f"function_{function}")
    assert deployment, (
        f'functions/{function} has no module "function_{function}" in terraform/main.tf'
    )
    assert one(deployment["source"]) == "./modules/cloud-function"
    assert one(deployment["entry_point"]) == function
    assert one(deployment["name"]) == function
    expected = {"http": "http", "cloudevent": "pubsub_push"}[names.FUNCTIONS[function]]
    assert one(deployment["trigger"]) == expected
    assert one(deployment["source_object"]) == f'${{var.function_bundles["{function}"]}}'


def test_pubsub_names_equal_the_contract() -> None:
    locals_ = {k: v for block in load(TF / "main.tf")["locals"] for k, v in block.items()}
    declared = one(locals_["names"])
    assert declared == {
        "events_topic": names.TOPIC_EVENTS,
        "sink_subscription": names.SUBSCRIPTION_SINK,
        "dlq_topic": names.TOPIC_DLQ,
        "dlq_subscription": names.SUBSCRIPTION_DLQ,
        "alerts_topic": names.TOPIC_ALERTS,
    }
    module_names = one(
        blocks(load(TF / "modules" / "pubsub" / "variables.tf"), "variable")["names"]["type"]
    )
    for field, value in declared.items():
        assert f'{field} = optional(string, "{value}")' in module_names, field
    attempts = blocks(load(TF / "modules" / "pubsub" / "variables.tf"), "variable")[
        "max_delivery_attempts"
    ]
    assert one(attempts["default"]) == names.MAX_DELIVERY_ATTEMPTS
    backoff = one(
        blocks(load(TF / "modules" / "pubsub" / "variables.tf"), "variable")["retry_backoff"][
            "type"
        ]
    )
    minimum, maximum = names.RETRY_BACKOFF_S
    assert f'minimum = optional(string, "{minimum}s")' in backoff
    assert f'maximum = optional(string, "{maximum}s")' in backoff


def test_bucket_lifecycle_ages_equal_the_retention_numbers() -> None:
    for path in (TF / "variables.tf", TF / "modules" / "storage" / "variables.tf"):
        type_expr = one(blocks(load(path), "variable")["retention"]["type"])
        assert optional_default(type_expr, "warm_days") == WARM_RETENTION_DAYS, path
        assert optional_default(type_expr, "cold_archive_after") == COLD_ARCHIVE_AFTER_DAYS, path
        assert optional_default(type_expr, "cold_days") == COLD_RETENTION_DAYS, path
    bucket = one(
        blocks(load(TF / "modules" / "storage" / "main.tf"), "resource")["google_storage_bucket"]
    )["bucket"]
    rules = [
        one(rule["content"])
        for rule in bucket["dynamic"]
        for rule in [one(rule.get("lifecycle_rule", {}))]
        if rule
    ]
    wanted = {
        ("${var.retention.warm_days}", "analytics/", "Delete"),
        ("${var.retention.cold_archive_after}", "archives/", "SetStorageClass"),
        ("${var.retention.cold_days}", "archives/", "Delete"),
    }
    found = {
        (
            one(one(r["condition"])["age"]),
            one(one(r["condition"])["matches_prefix"]),
            one(one(r["action"])["type"]),
        )
        for r in rules
    }
    assert found == wanted
    assert one(bucket["public_access_prevention"]) == "enforced"
    assert one(bucket["uniform_bucket_level_access"]) is True


def test_only_ingest_is_public_and_private_invokers_are_the_needed_accounts() -> None:
    modules = blocks(load(TF / "main.tf"), "module")
    functions = {k: v for k, v in modules.items() if k.startswith("function_")}
    public = {k for k, v in functions.items() if one(v.get("public", False)) is True}
    assert public == {"function_ingest"}
    assert "invokers" not in functions["function_ingest"]
    assert one(functions["function_sink"]["invokers"]) == "${module.push_sa.member}"
    pubsub = modules["pubsub"]
    assert one(pubsub["push_service_account_email"]) == "${module.push_sa.email}"
    assert one(pubsub["push_endpoint"]) == "${module.function_sink.uri}"


def test_every_alert_has_a_runbook() -> None:
    text = (TF / "modules" / "monitoring" / "main.tf").read_text()
    runbooks = re.findall(r'runbook\s*=\s*"([^"]+)"', text)
    assert len(runbooks) == 4
    for runbook in runbooks:
        path = ROOT / "docs" / "runbooks" / runbook
        assert path.exists(), f"missing runbook {path}"
        assert len(path.read_text()) > 300


def test_bundles_are_byte_for_byte_reproducible(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_bundles
    finally:
        sys.path.pop(0)
    first = build_bundles.build(ROOT, tmp_path / "a")
    (ROOT / "functions" / "ingest" / "__pycache__").mkdir(exist_ok=True)
    second = build_bundles.build(ROOT, tmp_path / "b")
    assert {k: v["sha256"] for k, v in first.items()} == {k: v["sha256"] for k, v in second.items()}
    assert set(first) == set(FUNCTIONS)
    for name, entry in first.items():
        assert entry["object"] == f"bundles/{name}-{entry['sha256'][:16]}.zip"
        with zipfile.ZipFile(entry["path"]) as archive:
            listing = archive.namelist()
            assert "main.py" in listing and "requirements.txt" in listing
            for needed in (
                "shared/contract/registry/events.yaml",
                "shared/llm/prices.yaml",
                "shared/storage/hot/migrations/versions/0001_hot_tier.py",
            ):
                assert needed in listing, needed
            assert not any("__pycache__" in n or n.endswith(".pyc") for n in listing)
            assert {i.date_time for i in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
            assert {i.external_attr >> 16 for i in archive.infolist()} == {0o100644}
            requirements = archive.read("requirements.txt").decode()
            assert "functions-framework==" in requirements and "pytest" not in requirements


def test_cloud_build_tests_first_and_applies_only_on_main() -> None:
    import yaml

    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    ids = [step["id"] for step in build["steps"]]
    assert ids.index("test") < ids.index("bundles") < ids.index("plan") < ids.index("apply")
    test_step = " ".join(build["steps"][ids.index("test")]["args"])
    assert "make test" in test_step


def test_cloud_build_steps_provide_every_tool_their_part_of_the_suite_needs() -> None:
    """Regression: the test step's image had neither node/npm nor terraform, so the deploy
    pipeline failed at its first step."""
    import yaml

    build = yaml.safe_load((ROOT / "cloudbuild.yaml").read_text())
    steps = {step["id"]: step for step in build["steps"]}
    test_step = " ".join(steps["test"]["args"])
    for package in ("default-jre-headless", "nodejs", "npm", "chromium", "make"):
        assert package in test_step, package
    assert "not needs_terraform" in test_step
    checks = steps["terraform-checks"]
    assert checks["name"].startswith("hashicorp/terraform")
    assert "terraform fmt -check -recursive" in " ".join(checks["args"])
    ids = list(steps)
    assert ids.index("terraform-checks") < ids.index("bundles")
    apply_step = " ".join(build["steps"][ids.index("apply")]["args"])
    assert '"$BRANCH_NAME" = "main"' in apply_step and "terraform apply" in apply_step
    bundles = " ".join(build["steps"][ids.index("bundles")]["args"])
    assert "scripts/build_bundles.py" in bundles


def scheduled_jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The scheduler jobs by name; each job's target is its function, with the scheduler
    account's OIDC token for that function (checked here for every job)."""
    locals_ = {k: v for block in doc["locals"] for k, v in block.items()}
    jobs = one(locals_["scheduled_jobs"])
    job = one(resources(doc, "google_cloud_scheduler_job")["scheduled"])
    target = one(job["http_target"])
    assert one(target["uri"]) == "${each.value.uri}"
    oidc = one(target["oidc_token"])
    assert one(oidc["service_account_email"]) == "${module.scheduler_sa.email}"
    assert one(oidc["audience"]) == "${each.value.uri}"
    assert set(jobs) == {
        "snapshot",
        "compaction",
        "retention",
        "anomaly",
        "metrics-materialize",
        "canary",
    }
    return jobs


def test_scheduler_jobs_call_the_snapshot_with_oidc_of_its_only_invoker() -> None:
    doc = load(TF / "main.tf")
    jobs = scheduled_jobs(doc)
    assert jobs["snapshot"]["uri"] == jobs["compaction"]["uri"] == "${module.function_snapshot.uri}"
    assert jobs["compaction"]["body"] == {"compact": True}
    snapshot = blocks(doc, "module")["function_snapshot"]
    assert one(snapshot["invokers"]) == "${module.scheduler_sa.member}" or snapshot["invokers"] == [
        "${module.scheduler_sa.member}"
    ]
    assert "TELEMETRY_CLOUDSQL_HOST" in str(snapshot["environment"])


def test_lifecycle_function_its_schedule_key_and_access() -> None:
    doc = load(TF / "main.tf")
    modules = blocks(doc, "module")
    lifecycle = modules["function_lifecycle"]
    assert one(lifecycle["entry_point"]) == "lifecycle" and one(lifecycle["trigger"]) == "http"
    assert "TELEMETRY_ARCHIVE_KEK = google_kms_crypto_key.cold.id" in str(lifecycle["environment"])
    assert "lifecycle_sa" in str(modules["cloudsql"]["iam_service_accounts"])
    assert "snapshot_sa" in str(modules["cloudsql"]["iam_service_accounts"])
    assert "lifecycle_sa" in str(modules["pseudonym_key"]["accessors"])
    assert "lifecycle_sa" in str(modules["pubsub"]["alert_publishers"])
    job = scheduled_jobs(doc)["retention"]
    assert job["uri"] == "${module.function_lifecycle.uri}"
    assert job["body"] == {"action": "retention"}
    key = one(resources(doc, "google_kms_crypto_key")["cold"])
    assert one(key["purpose"]) == "ENCRYPT_DECRYPT" and one(key["rotation_period"])
    assert one(one(key["lifecycle"])["prevent_destroy"]) is True
    assert names.FUNCTIONS["lifecycle"] == "http" and "lifecycle" in FUNCTIONS


def test_ingest_reads_the_otlp_tokens_from_secret_manager() -> None:
    modules = blocks(load(TF / "main.tf"), "module")
    ingest = modules["function_ingest"]
    assert "TELEMETRY_OTLP_TOKENS = module.otlp_tokens.secret_id" in str(
        ingest["secret_environment"]
    )
    secret = modules["otlp_tokens"]
    assert one(secret["secret_id"]) == "telemetry-otlp-tokens"
    assert "ingest_sa" in str(secret["accessors"])


def test_anomaly_function_its_schedules_webhook_secret_and_access() -> None:
    doc = load(TF / "main.tf")
    modules = blocks(doc, "module")
    anomaly = modules["function_anomaly"]
    assert one(anomaly["invokers"]) == "${module.scheduler_sa.member}" or anomaly["invokers"] == [
        "${module.scheduler_sa.member}"
    ]
    assert "TELEMETRY_ALERT_WEBHOOK_URL = module.alert_webhook.secret_id" in str(
        anomaly["secret_environment"]
    )
    assert "TELEMETRY_RUNBOOK_BASE_URL = var.runbook_base_url" in str(anomaly["environment"])
    assert one(modules["alert_webhook"]["secret_id"]) == "telemetry-alert-webhook"
    assert "anomaly_sa" in str(modules["alert_webhook"]["accessors"])
    assert "anomaly_sa" in str(modules["cloudsql"]["iam_service_accounts"])
    assert "anomaly_sa" in str(modules["pubsub"]["alert_publishers"])
    assert "anomaly_sa" in str(modules["data_bucket"]["object_admins"])
    assert "metrics" in str(modules["bigquery"]["tables"])
    jobs = scheduled_jobs(doc)
    assert jobs["anomaly"]["body"] == {"action": "evaluate"}
    assert jobs["metrics-materialize"]["body"] == {"action": "materialize"}
    assert jobs["canary"]["body"] == {"action": "canary"}
    assert jobs["canary"]["schedule"] == "${var.canary_schedule}"
    assert "TELEMETRY_CANARY_TARGET =" in str(anomaly["environment"])
    assert "function_ingest.uri" in str(anomaly["environment"])
    assert "TELEMETRY_CANARY_TARGET_DATABASE_URL = module.canary_target_database.secret_id" in str(
        anomaly["secret_environment"]
    )
    assert "anomaly_sa" in str(modules["canary_target_database"]["accessors"])
    assert (
        jobs["anomaly"]["uri"]
        == jobs["metrics-materialize"]["uri"]
        == ("${module.function_anomaly.uri}")
    )


def test_edge_protection_bans_floods_per_address_in_front_of_ingest() -> None:
    """Optional (var.edge_protection): a Cloud Armor policy with a rate-based ban per client
    address on the load balancer's backend, a serverless NEG to ingest, TLS 1.2 at least."""
    edge = TF / "modules" / "edge-protection"
    doc = load(edge / "main.tf")
    policy = resources(doc, "google_compute_security_policy")["ingest"]
    rules = {one(r["priority"]): r for r in policy["rule"]}
    ban = rules[1000]
    assert one(ban["action"]) == "rate_based_ban"
    options = one(ban["rate_limit_options"])
    assert one(options["enforce_on_key"]) == "IP"
    assert one(options["exceed_action"]) == "deny(429)"
    assert "var.requests_per_minute" in str(one(options["rate_limit_threshold"])["count"])
    assert one(rules[2147483647]["action"]) == "allow"
    backend = resources(doc, "google_compute_backend_service")["ingest"]
    assert "google_compute_security_policy.ingest.id" in str(backend["security_policy"])
    neg = resources(doc, "google_compute_region_network_endpoint_group")["ingest"]
    assert one(neg["network_endpoint_type"]) == "SERVERLESS"
    tls = resources(doc, "google_compute_ssl_policy")["ingest"]
    assert one(tls["min_tls_version"]) == "TLS_1_2"

    root = load(TF / "main.tf")
    modules = blocks(root, "module")
    assert "var.edge_protection ? 1 : 0" in str(modules["edge"]["count"])
    assert "module.function_ingest.service" in str(modules["edge"]["cloud_run_service"])
    ingest = modules["function_ingest"]
    assert 'TELEMETRY_TRUSTED_PROXY_HOPS = var.edge_protection ? "1" : "0"' in str(
        ingest["environment"]
    ).replace("'", '"')
    assert "var.edge_protection" in str(ingest["behind_load_balancer"])
    function = resources(
        load(TF / "modules" / "cloud-function" / "main.tf"), "google_cloudfunctions2_function"
    )
    assert "ALLOW_INTERNAL_AND_GCLB" in str(function["function"]["service_config"])
    variables = blocks(load(TF / "variables.tf"), "variable")
    assert one(variables["edge_protection"]["default"]) is False
