"""The metrics catalog (``catalog.yaml``) as typed objects.

A metric is a ratio of two measures, a total of one, a weighted quantile of one, the drift of
one's distribution from a baseline, or a gauge read by a probe. A ratio or a total may be
grouped (``group_by``: one alert per user, operation or model) and compared with its own
``baseline``. A measure is a filtered set of rows of
one hot-tier table (``telemetry_events`` by event name or category, or ``api_calls_log``)
aggregated by count, sum or distinct count. The catalog is parsed once; the rules a person can
break while editing it are checked by ``telemetry metrics lint``.
"""

from __future__ import annotations

import re
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CATALOG_PATH = Path(__file__).with_name("catalog.yaml")
#: Where every metric's runbook page lives, relative to the repository root.
RUNBOOK_DIR = "docs/runbooks"
#: The most evaluations one window may span (window / grain): bounds the SQL's row expansion.
MAX_GRAINS_PER_WINDOW = 96

Scalar = str | int | float | bool
_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class CatalogError(ValueError):
    """The catalog cannot be read: names the metric and what is wrong."""


def parse_duration(text: str) -> timedelta:
    """``15m``, ``1h``, ``7d`` → a timedelta (the catalog's only duration form)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 15m, 1h or 7d")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Measure(_Strict):
    """Rows of one table, filtered, and how they are aggregated."""

    table: Literal["telemetry_events", "api_calls_log"] = "telemetry_events"
    events: tuple[str, ...] = ()
    category: str | None = None
    agg: Literal["count", "sum", "count_distinct"] = "count"
    #: The summed columns or props (sum), or the distinct key (count_distinct).
    fields: tuple[str, ...] = ()
    #: One field read per row: the quantile's value or the distribution's category.
    field: str | None = None
    where: dict[str, tuple[Scalar, ...]] = Field(default_factory=dict)
    where_not: dict[str, tuple[Scalar, ...]] = Field(default_factory=dict)
    #: Count stored rows as they are, not re-weighted by 1 / sample_rate.
    unweighted: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> Measure:
        if self.table == "api_calls_log" and (self.events or self.category):
            raise ValueError("api_calls_log holds llm.call only: no events or category")
        if self.agg != "count" and not self.fields:
            raise ValueError(f"agg {self.agg} needs fields")
        if self.agg == "count_distinct" and len(self.fields) != 1:
            raise ValueError("count_distinct takes exactly one field")
        return self

    def read_fields(self) -> set[str]:
        """Every column or prop this measure reads."""
        return {*self.fields, *self.where, *self.where_not, *([self.field] if self.field else [])}


class Thresholds(_Strict):
    """When a value breaches: beyond ``warn``, and beyond ``critical``, in ``direction``."""

    direction: Literal["above", "below"]
    warn: float
    critical: float

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        ahead = (
            self.critical >= self.warn if self.direction == "above" else self.critical <= self.warn
        )
        if not ahead:
            raise ValueError(f"critical must lie beyond warn in direction {self.direction}")
        return self

    def level(self, value: float) -> Literal["ok", "warn", "critical"]:
        """How far ``value`` breaches."""
        sign = 1 if self.direction == "above" else -1
        if sign * value > sign * self.critical:
            return "critical"
        if sign * value > sign * self.warn:
            return "warn"
        return "ok"


class Fire(_Strict):
    """Fire when at least ``n`` of the last ``m`` evaluations breach."""

    n: int = Field(ge=1)
    m: int = Field(ge=1, le=20)

    @model_validator(mode="after")
    def _n_le_m(self) -> Fire:
        if self.n > self.m:
            raise ValueError("N of M needs n <= m")
        return self


class Drift(_Strict):
    """How a distribution is compared with its baseline."""

    method: Literal["jensen_shannon", "psi"] = "jensen_shannon"
    baseline: str = "7d"
    min_sample: int = Field(default=200, ge=1)

    @field_validator("baseline")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value


Kind = Literal["ratio", "quantile", "distribution", "gauge", "total"]
#: The fields a metric may be grouped by: who, what for, and with which model.
GROUP_FIELDS = ("user_key", "operation", "model", "provider")
Source = Literal["hot", "warm", "both"]
Channel = Literal["webhook", "topic"]


class Metric(_Strict):
    """One metric of the catalog."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str = Field(min_length=1)
    owner: str = Field(min_length=1)
    unit: str = Field(min_length=1)
    dashboard: Literal["LLM Cost", "Product Quality", "User Feedback Loop"]
    kind: Kind
    numerator: Measure | None = None
    denominator: Measure | None = None
    #: The value is 1 - numerator / denominator (a share of what is missing).
    complement: bool = False
    scale: float = 1.0
    measure: Measure | None = None
    quantile: float | None = Field(default=None, gt=0, lt=1)
    drift: Drift | None = None
    probe: str | None = None
    source: Source
    window: str
    grain: str
    min_sample: int = Field(default=1, ge=1)
    thresholds: Thresholds
    fire: Fire
    keep_firing_for: str
    cooldown: str
    channels: tuple[Channel, ...]
    runbook: str = Field(pattern=r"^[a-z0-9-]+\.md$")
    #: Fields the metric can be broken down by on demand (``telemetry metrics breakdown``).
    breakdowns: tuple[str, ...] = ()
    #: A ratio's breakdown divides each group's numerator by the whole denominator (each
    #: reason's share of everything received), not by the group's own.
    breakdown_over_total: bool = False
    #: Alert per value of this field (the pseudonymous user, the operation, the model): each
    #: group that breaches fires on its own, with its own N of M, keep_firing_for and cooldown.
    group_by: str | None = None
    #: The most groups one evaluation may fire for; the alert says how many more breach.
    max_groups: int = Field(default=10, ge=1, le=100)
    #: Compare each value with its own level over this period before the window (a ratio of
    #: the two: 3.0 is three times the usual), instead of with a fixed number.
    baseline: str | None = None

    @field_validator("window", "grain", "keep_firing_for", "cooldown")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _shape(self) -> Metric:
        needs = {
            "ratio": ("numerator", "denominator"),
            "quantile": ("measure", "quantile"),
            "distribution": ("measure", "drift"),
            "gauge": ("probe",),
            "total": ("measure",),
        }[self.kind]
        for name in needs:
            if getattr(self, name) is None:
                raise ValueError(f"a {self.kind} metric needs {name}")
        if self.kind in ("quantile", "distribution") and self.measure and not self.measure.field:
            raise ValueError(f"a {self.kind} metric's measure needs a field")
        if self.breakdowns and self.kind == "gauge":
            raise ValueError("a gauge cannot be broken down")
        if self.kind == "total" and self.measure and self.measure.agg == "count_distinct":
            raise ValueError("a total counts or sums: count_distinct has no total per grain")
        if self.group_by is not None:
            if self.group_by not in GROUP_FIELDS:
                raise ValueError(f"group_by must be one of {', '.join(GROUP_FIELDS)}")
            if self.kind not in ("ratio", "total"):
                raise ValueError("only a ratio or a total can be grouped")
            if any(m.agg == "count_distinct" for m in self.measures):
                raise ValueError("a grouped metric counts or sums (no count_distinct)")
        if self.baseline is not None:
            if self.group_by is None or self.kind not in ("ratio", "total"):
                raise ValueError("a baseline compares a grouped ratio or total with itself")
            if parse_duration(self.baseline) < self.window_td:
                raise ValueError("a baseline spans at least one window")
        grains = self.window_td / self.grain_td
        if grains != int(grains) or not 1 <= grains <= MAX_GRAINS_PER_WINDOW:
            raise ValueError(
                f"window {self.window} must be 1 to {MAX_GRAINS_PER_WINDOW} whole grains "
                f"of {self.grain}"
            )
        return self

    @property
    def window_td(self) -> timedelta:
        """The window as a timedelta."""
        return parse_duration(self.window)

    @property
    def grain_td(self) -> timedelta:
        """The grain (evaluation step) as a timedelta."""
        return parse_duration(self.grain)

    @property
    def keep_firing_td(self) -> timedelta:
        """How long a firing alert stays firing after its last breach."""
        return parse_duration(self.keep_firing_for)

    @property
    def cooldown_td(self) -> timedelta:
        """How long after a resolve a new firing waits."""
        return parse_duration(self.cooldown)

    @property
    def measures(self) -> tuple[Measure, ...]:
        """The measures the metric reads."""
        return tuple(m for m in (self.numerator, self.denominator, self.measure) if m)

    @property
    def runbook_path(self) -> str:
        """The runbook page, relative to the repository root."""
        return f"{RUNBOOK_DIR}/{self.runbook}"


class Catalog(_Strict):
    """Every metric, by name, in catalog order."""

    metrics: tuple[Metric, ...]

    def __iter__(self) -> Any:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def get(self, name: str) -> Metric:
        """The metric called ``name``."""
        for metric in self.metrics:
            if metric.name == name:
                return metric
        raise KeyError(f"no metric {name!r} in the catalog")


def _normalise_where(entry: dict[str, Any]) -> None:
    for measure_key in ("numerator", "denominator", "measure"):
        measure = entry.get(measure_key)
        if not isinstance(measure, dict):
            continue
        for key in ("where", "where_not"):
            filters = measure.get(key) or {}
            measure[key] = {
                field: tuple(v) if isinstance(v, list) else (v,) for field, v in filters.items()
            }


def parse_catalog(text: str) -> Catalog:
    """The catalog in ``text``, defaults applied; :class:`CatalogError` names what is wrong."""
    raw = yaml.safe_load(text) or {}
    defaults = raw.get("defaults") or {}
    metrics = []
    for index, entry in enumerate(raw.get("metrics") or []):
        name = entry.get("name", f"#{index + 1}") if isinstance(entry, dict) else f"#{index + 1}"
        if not isinstance(entry, dict):
            raise CatalogError(f"metric {name}: not a mapping")
        merged = {**defaults, **entry}
        _normalise_where(merged)
        try:
            metrics.append(Metric.model_validate(merged))
        except ValueError as exc:
            raise CatalogError(f"metric {name}: {exc}") from exc
    names = [m.name for m in metrics]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise CatalogError(f"metric names used twice: {', '.join(duplicates)}")
    return Catalog(metrics=tuple(metrics))


def load_catalog(path: Path | str | None = None) -> Catalog:
    """The catalog at ``path`` (the shipped one by default)."""
    return parse_catalog(Path(path or CATALOG_PATH).read_text(encoding="utf-8"))


@cache
def default_catalog() -> Catalog:
    """The shipped catalog, parsed once per process."""
    return load_catalog()
