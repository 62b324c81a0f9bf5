"""Local push delivery: pull from a subscription and POST each message as Pub/Sub push would.

The Pub/Sub emulator's own push delivery stalls after failed deliveries: measured on this
stack, with the endpoint failing for 3 s, 8 of 40 messages arrived and the rest were
neither redelivered nor dead-lettered; a 60 s database outage under ``make dev`` stranded
14,250 of 17,950 accepted events. Its pull path behaves: nacked messages come back after the
retry backoff and go to the dead-letter topic after ``max_delivery_attempts``. So locally the
sink subscription is a pull subscription, and :class:`PushRelay` turns it into push:

* each message is POSTed to the endpoint as the exact JSON body Pub/Sub push sends, so the
  sink runs its production code path (functions-framework's push-to-CloudEvent conversion
  included);
* a 2xx answer acks the message; anything else (or no answer) nacks it, and redelivery,
  backoff and dead-lettering are left to the emulator;
* at most ``concurrency`` messages are in flight, and one summary line is logged per interval:
  delivered, failed, in flight.

In production the subscription is a real push subscription with OIDC; no relay runs there.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from google.api_core.exceptions import DeadlineExceeded

logger = logging.getLogger(__name__)


def push_body(received: Any, subscription: str) -> bytes:
    """The JSON body Pub/Sub push POSTs for one received message."""
    message = received.message
    published = message.publish_time
    publish_time = published.isoformat().replace("+00:00", "Z") if published else None
    body: dict[str, Any] = {
        "message": {
            "data": base64.b64encode(message.data).decode("ascii"),
            "attributes": dict(message.attributes),
            "messageId": message.message_id,
            "message_id": message.message_id,
            "publishTime": publish_time,
            "publish_time": publish_time,
        },
        "subscription": subscription,
    }
    if received.delivery_attempt:
        body["deliveryAttempt"] = received.delivery_attempt
    return json.dumps(body).encode("utf-8")


class PushRelay:
    """Delivers a pull subscription to an HTTP endpoint, acking on 2xx and nacking otherwise."""

    def __init__(
        self,
        subscription: str,
        endpoint: str,
        concurrency: int = 8,
        timeout_s: float = 30.0,
        summary_s: float = 10.0,
        on_recovered: Callable[[], object] | None = None,
    ) -> None:
        self.subscription = subscription
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.timeout_s = timeout_s
        self.summary_s = summary_s
        self.delivered = 0
        self.failed = 0
        self.in_flight = 0
        #: Called (in its own thread) when a delivery succeeds after failures: the sink answers
        #: again, so what Pub/Sub dead-lettered during the outage can come back.
        self.on_recovered = on_recovered
        #: How many times to POST a message (1 unless a chaos run duplicates deliveries, as
        #: Pub/Sub's at-least-once push may); each copy must be answered 2xx for the ack.
        self.copies: Callable[[Any], int] = lambda _received: 1
        self.duplicated = 0
        self._failing = False
        self._lock = threading.Lock()
        self._slots = threading.Semaphore(concurrency)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscriber: Any = None

    def start(self) -> PushRelay:
        """Start relaying in a background thread."""
        from google.cloud import pubsub_v1  # type: ignore[attr-defined]

        self._subscriber = pubsub_v1.SubscriberClient()
        self._thread = threading.Thread(target=self._run, name="push-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop pulling, let deliveries in flight finish (up to ``timeout``), and close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._subscriber is not None:
            with contextlib.suppress(Exception):
                self._subscriber.close()
        self._log_summary()

    def _run(self) -> None:
        last_summary = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="push-relay") as pool:
            while not self._stop.is_set():
                if time.monotonic() - last_summary >= self.summary_s:
                    self._log_summary()
                    last_summary = time.monotonic()
                free = self._free_slots()
                if not free:
                    time.sleep(0.01)
                    continue
                try:
                    response = self._subscriber.pull(
                        subscription=self.subscription, max_messages=free, timeout=2
                    )
                    received = list(response.received_messages)
                except DeadlineExceeded:  # nothing to pull within the call's timeout
                    self._release(free)
                    continue
                except Exception as exc:  # the emulator restarting, say: try again
                    self._release(free)
                    if not self._stop.is_set():
                        logger.warning(
                            "relay pull failed", extra={"error_type": type(exc).__name__}
                        )
                        self._stop.wait(0.5)
                    continue
                self._release(free - len(received))
                for item in received:
                    with self._lock:
                        self.in_flight += 1
                    pool.submit(self._deliver, item)

    def _free_slots(self) -> int:
        """Take every free delivery slot (waiting a moment for the first); the count taken."""
        if not self._slots.acquire(timeout=0.2):
            return 0
        taken = 1
        while taken < self.concurrency and self._slots.acquire(blocking=False):
            taken += 1
        return taken

    def _release(self, count: int) -> None:
        for _ in range(count):
            self._slots.release()

    def _post(self, body: bytes) -> bool:
        try:
            request = urllib.request.Request(  # noqa: S310 - a local endpoint of the stack
                self.endpoint,
                data=body,
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=self.timeout_s) as answer:  # noqa: S310
                return bool(200 <= answer.status < 300)
        except (urllib.error.URLError, OSError, ValueError):
            return False

    def _deliver(self, received: Any) -> None:
        body = push_body(received, self.subscription)
        copies = self.copies(received)
        ok = all([self._post(body) for _ in range(copies)])
        if copies > 1:
            with self._lock:
                self.duplicated += 1
        try:
            if ok:
                self._subscriber.acknowledge(
                    subscription=self.subscription, ack_ids=[received.ack_id]
                )
            else:
                self._subscriber.modify_ack_deadline(
                    subscription=self.subscription,
                    ack_ids=[received.ack_id],
                    ack_deadline_seconds=0,
                )
        except Exception as exc:  # an ack lost is a redelivery, harmless: the sink is idempotent
            logger.warning("relay ack failed", extra={"error_type": type(exc).__name__})
        with self._lock:
            self.in_flight -= 1
            if ok:
                self.delivered += 1
            else:
                self.failed += 1
            recovered, self._failing = ok and self._failing, not ok
        self._slots.release()
        if recovered and self.on_recovered is not None:
            logger.info("relay: the endpoint answers again")
            threading.Thread(target=self.on_recovered, name="relay-recovered", daemon=True).start()

    def _log_summary(self) -> None:
        with self._lock:
            counts = {
                "delivered": self.delivered,
                "failed": self.failed,
                "in_flight": self.in_flight,
            }
        logger.info("relay summary", extra=counts)


def sink_relay(
    project: str,
    sink_url: str,
    concurrency: int = 8,
    on_recovered: Callable[[], object] | None = None,
) -> PushRelay:
    """The relay of the sink subscription to a sink at ``sink_url`` (not started).

    It POSTs to ``/projects/<project>/topics/telemetry-events`` on the sink, as a push
    subscription does: functions-framework takes the CloudEvent's ``source`` from that path.
    """
    from shared.pubsub import resources

    subscription = f"projects/{project}/subscriptions/{resources.SUBSCRIPTION_SINK}"
    endpoint = f"{sink_url}/projects/{project}/topics/{resources.TOPIC_EVENTS}"
    return PushRelay(subscription, endpoint, concurrency, on_recovered=on_recovered)
