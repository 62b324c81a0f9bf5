"""The event registry: names, versions, categories and props schemas of every event."""

from shared.contract.registry.loader import (
    DEFAULT_REGISTRY_PATH,
    EventSpec,
    Registry,
    default_registry,
    load_registry,
)

__all__ = ["DEFAULT_REGISTRY_PATH", "EventSpec", "Registry", "default_registry", "load_registry"]
