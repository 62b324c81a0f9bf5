"""The official Pub/Sub emulator (Cloud SDK), started from its own launcher, and provisioning."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from pathlib import Path

from google.api_core import exceptions as gexc

from shared.pubsub import resources as names
from telemetry_cli.stack.errors import StackError
from telemetry_cli.stack.process import ManagedProcess, http_ok

_LAUNCHER = Path("platform/pubsub-emulator/bin/cloud-pubsub-emulator")


def find_sdk_root() -> Path:
    """Where the Cloud SDK is installed (the emulator's launcher lives under it)."""
    candidates = [os.environ.get("CLOUDSDK_ROOT_DIR")]
    gcloud = shutil.which("gcloud")
    if gcloud:
        candidates.append(str(Path(gcloud).resolve().parent.parent))
    candidates += [
        "/usr/lib/google-cloud-sdk",
        "/usr/share/google-cloud-sdk",
        "/opt/google-cloud-sdk",
    ]
    for candidate in candidates:
        if candidate and (Path(candidate) / _LAUNCHER).exists():
            return Path(candidate)
    if gcloud:
        out = subprocess.run(
            [gcloud, "info", "--format=value(installation.sdk_root)"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout.strip()
        if out and (Path(out) / _LAUNCHER).exists():
            return Path(out)
    raise StackError(
        "the Pub/Sub emulator is missing: install the Cloud SDK with its "
        "pubsub-emulator component, or set PUBSUB_EMULATOR_HOST to a running one"
    )


def emulator_process(port: int, data_dir: Path, log_file: Path) -> ManagedProcess:
    """The emulator as a managed process (not started)."""
    if shutil.which("java") is None:
        raise StackError(
            "Java is missing: the Pub/Sub emulator needs a Java 11+ runtime "
            "(`make setup` installs default-jre-headless as root)",
            str(log_file),
        )
    launcher = find_sdk_root() / _LAUNCHER
    data_dir.mkdir(parents=True, exist_ok=True)
    return ManagedProcess(
        "pubsub-emulator",
        [str(launcher), "--host=127.0.0.1", f"--port={port}", f"--dir={data_dir}"],
        log_file,
    )


def wait_emulator(proc: ManagedProcess, port: int, timeout: float = 60) -> None:
    """Wait until the emulator answers ``Ok`` on its root URL."""
    proc.wait_ready(lambda: http_ok(f"http://127.0.0.1:{port}/", "Ok"), timeout)


def provision(project: str, ack_deadline: int = 30) -> None:
    """Create the topics and subscriptions of the contract (idempotent).

    Needs ``PUBSUB_EMULATOR_HOST`` in the environment. The sink subscription is a pull
    subscription here (the relay delivers it, see ``telemetry_cli.stack.relay``); one left with a
    push config by an older run is switched to pull, and its retry and dead-letter policies are
    brought up to date.
    """
    from google.cloud import pubsub_v1  # type: ignore[attr-defined]
    from google.protobuf import duration_pb2, field_mask_pb2

    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    minimum, maximum = names.LOCAL_RETRY_BACKOFF_S
    try:
        for topic in (names.TOPIC_EVENTS, names.TOPIC_DLQ, names.TOPIC_ALERTS):
            with contextlib.suppress(gexc.AlreadyExists):
                publisher.create_topic(name=publisher.topic_path(project, topic), timeout=10)
        sink_path = subscriber.subscription_path(project, names.SUBSCRIPTION_SINK)
        policies = {
            "dead_letter_policy": {
                "dead_letter_topic": publisher.topic_path(project, names.TOPIC_DLQ),
                "max_delivery_attempts": names.MAX_DELIVERY_ATTEMPTS,
            },
            "retry_policy": {
                "minimum_backoff": duration_pb2.Duration(seconds=minimum),
                "maximum_backoff": duration_pb2.Duration(seconds=maximum),
            },
        }
        try:
            subscriber.create_subscription(
                request={
                    "name": sink_path,
                    "topic": publisher.topic_path(project, names.TOPIC_EVENTS),
                    "ack_deadline_seconds": ack_deadline,
                    **policies,
                },
                timeout=10,
            )
        except gexc.AlreadyExists:
            subscriber.modify_push_config(
                request={"subscription": sink_path, "push_config": {}}, timeout=10
            )
            subscriber.update_subscription(
                request={
                    "subscription": {"name": sink_path, **policies},
                    "update_mask": field_mask_pb2.FieldMask(paths=list(policies)),
                },
                timeout=10,
            )
        with contextlib.suppress(gexc.AlreadyExists):
            subscriber.create_subscription(
                request={
                    "name": subscriber.subscription_path(project, names.SUBSCRIPTION_DLQ),
                    "topic": publisher.topic_path(project, names.TOPIC_DLQ),
                    "ack_deadline_seconds": 60,
                },
                timeout=10,
            )
    finally:
        subscriber.close()
        publisher.transport.close()
