"""What an alert is, for the code that raises one: a name, a severity, a summary and details.

Storage (retention keeping what it cannot yet drop) and the metrics raise alerts; where they go
(the ``telemetry-alerts`` topic, :func:`shared.pubsub.alerts.alert_sender`) is chosen by the
function or command that runs them, so no lower layer imports the messaging layer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

Severity = Literal["info", "warning", "critical"]
#: Raises one alert: ``(alert, severity, summary, details)``.
AlertSend = Callable[[str, Severity, str, Mapping[str, Any]], None]
