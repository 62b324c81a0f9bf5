"""Pseudonyms and the ``x-pii`` rules: raw identifiers never leave the function that got them.

A pseudonym is the lower-case hex of HMAC-SHA256(key, value as UTF-8), stored with the id of
the key. Keys are versioned: the first key of ``TELEMETRY_PSEUDONYM_KEY`` is active, the others
are retired but kept, so erasure can compute a person's pseudonym under every key that was
ever active.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from typing import Any

from shared.registry.loader import EventSpec


class Pseudonymiser:
    """HMAC pseudonyms under a versioned key ring."""

    def __init__(self, keys: Sequence[tuple[str, str]]) -> None:
        if not keys:
            raise ValueError("a pseudonymiser needs at least one key")
        self._keys = [(key_id, secret.encode("utf-8")) for key_id, secret in keys]
        self.active_key_id = self._keys[0][0]

    def __repr__(self) -> str:
        return f"Pseudonymiser(active_key_id={self.active_key_id!r}, keys={len(self._keys)})"

    def pseudonym(self, value: str) -> tuple[str, str]:
        """``(key_id, user_key)`` of a value under the active key."""
        key_id, secret = self._keys[0]
        return key_id, _hmac_hex(secret, value)

    def all_pseudonyms(self, value: str) -> dict[str, str]:
        """The value's pseudonym under every known key, keyed by key id (for erasure)."""
        return {key_id: _hmac_hex(secret, value) for key_id, secret in self._keys}

    def apply_pii_rules(self, spec: EventSpec, props: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``props`` with ``x-pii: hash`` fields pseudonymised and ``drop`` removed."""
        rules = spec.pii
        if not rules:
            return props
        cleaned: dict[str, Any] = {}
        for name, value in props.items():
            rule = rules.get(name)
            if rule == "drop":
                continue
            if rule == "hash" and value is not None:
                cleaned[name] = self.pseudonym(str(value))[1]
            else:
                cleaned[name] = value
        return cleaned


def _hmac_hex(secret: bytes, value: str) -> str:
    return hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()
