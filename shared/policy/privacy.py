"""Pseudonyms and the ``x-pii`` rules: raw identifiers never leave the function that got them.

A pseudonym is the lower-case hex of HMAC-SHA256(key, value as UTF-8), stored with the id of
the key. Keys are versioned: the first key of ``TELEMETRY_PSEUDONYM_KEY`` is active, the others
are retired but kept, so erasure can compute a person's pseudonym under every key that was
ever active.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec


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

    def pseudonym_hex(self, value: str) -> str:
        """The pseudonym of a value under the active key, without its key id (``x-pii: hash``)."""
        return _hmac_hex(self._keys[0][1], value)

    def all_pseudonyms(self, value: str) -> dict[str, str]:
        """The value's pseudonym under every known key, keyed by key id (for erasure)."""
        return {key_id: _hmac_hex(secret, value) for key_id, secret in self._keys}


@dataclass(frozen=True)
class PiiRules:
    """The ``x-pii`` marks of one props schema: fields stored as pseudonyms, fields dropped.

    Derived once per event version from its schema (:meth:`of_schema`). :meth:`apply` is the
    one implementation of the rule, for props decoded as dicts (the slow way, the backend
    client) and as msgspec structs (ingest's fast way) alike.
    """

    hashed: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()

    @classmethod
    def of_schema(cls, schema: Mapping[str, Any]) -> PiiRules:
        """The rules a props schema declares on its top-level properties."""
        properties: Mapping[str, Any] = schema.get("properties") or {}
        marks = {
            name: sub.get("x-pii") for name, sub in properties.items() if isinstance(sub, Mapping)
        }
        return cls(
            hashed=tuple(n for n, rule in marks.items() if rule == "hash"),
            dropped=tuple(n for n, rule in marks.items() if rule == "drop"),
        )

    def __bool__(self) -> bool:
        return bool(self.hashed or self.dropped)

    def apply(self, props: Any, pseudonym: Callable[[str], str]) -> Any:
        """``props`` with hashed fields replaced by ``pseudonym(value)`` and dropped ones gone.

        A dict is copied; a struct is changed in place (it was decoded for this event alone).
        """
        if isinstance(props, dict):
            cleaned = {k: v for k, v in props.items() if k not in self.dropped}
            for name in self.hashed:
                value = cleaned.get(name)
                if value is not None:
                    cleaned[name] = pseudonym(str(value))
            return cleaned
        attribute = _struct_attributes(props.__class__)
        for name in self.hashed:
            value = getattr(props, attribute[name])
            if value is not msgspec.UNSET and value is not None:
                setattr(props, attribute[name], pseudonym(str(value)))
        for name in self.dropped:
            setattr(props, attribute[name], msgspec.UNSET)
        return props


@functools.cache
def _struct_attributes(kind: Any) -> dict[str, str]:
    """JSON property name -> attribute name of a msgspec struct type."""
    fields: tuple[str, ...] = kind.__struct_fields__
    encoded: tuple[str, ...] = kind.__struct_encode_fields__
    return dict(zip(encoded, fields, strict=True))


def _hmac_hex(secret: bytes, value: str) -> str:
    return hmac.new(secret, value.encode("utf-8"), hashlib.sha256).hexdigest()
