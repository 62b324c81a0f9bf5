"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from google.cloud import pubsub_v1

from shared.pubsub import resources as names
from tests.helpers import function_server


def push_endpoint(url: str, project: str) -> str:
    return f"{url}/projects/{project}/topics/{names.TOPIC_EVENTS}"


@pytest.fixture(scope="module")
def sink_url(services, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    project = services.options.project
    with function_server("sink", services.env(), tmp_path_factory.mktemp("sink-logs")) as url:
        subscriber = pubsub_v1.SubscriberClient()
        path = subscriber.subscription_path(project, names.SUBSCRIPTION_SINK)
        subscriber.modify_push_config(
            request={
                "subscription": path,
                "push_config": {"push_endpoint": push_endpoint(url, project)},
            }
        )
        try:
            yield url
        finally:
            subscriber.modify_push_config(request={"subscription": path, "push_config": {}})
            subscriber.close()
