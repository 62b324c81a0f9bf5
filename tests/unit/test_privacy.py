from __future__ import annotations

import hashlib
import hmac

import pytest

from shared.privacy import Pseudonymiser
from shared.registry import default_registry


def test_pseudonym_is_the_hmac_of_the_contract() -> None:
    p = Pseudonymiser([("k2", "secret-two-long-enough"), ("k1", "secret-one-long-enough")])
    key_id, user_key = p.pseudonym("u-42")
    expected = hmac.new(b"secret-two-long-enough", b"u-42", hashlib.sha256).hexdigest()
    assert (key_id, user_key) == ("k2", expected)
    assert user_key == user_key.lower() and len(user_key) == 64


def test_erasure_can_compute_the_pseudonym_under_every_key() -> None:
    p = Pseudonymiser([("k2", "secret-two-long-enough"), ("k1", "secret-one-long-enough")])
    old = Pseudonymiser([("k1", "secret-one-long-enough")])
    everything = p.all_pseudonyms("u-42")
    assert set(everything) == {"k1", "k2"}
    assert everything["k1"] == old.pseudonym("u-42")[1]
    assert everything["k2"] != everything["k1"]


def test_pii_rules_hash_and_drop() -> None:
    p = Pseudonymiser([("k1", "secret-one-long-enough")])
    spec = default_registry().get("feedback.submit", 1)
    props = {"rating": 4, "contact_email": "a@example.com", "page_url": "https://x/?u=1"}
    cleaned = p.apply_pii_rules(spec, props)
    assert cleaned == {"rating": 4, "contact_email": p.pseudonym("a@example.com")[1]}
    assert props["contact_email"] == "a@example.com"  # input untouched


def test_events_without_pii_pass_through() -> None:
    p = Pseudonymiser([("k1", "secret-one-long-enough")])
    spec = default_registry().get("node.expand", 1)
    props = {"node_id": "n-1"}
    assert p.apply_pii_rules(spec, props) is props


def test_repr_hides_secrets_and_empty_ring_is_refused() -> None:
    p = Pseudonymiser([("k1", "secret-one-long-enough")])
    assert "secret" not in repr(p).replace("keys", "")
    with pytest.raises(ValueError, match="at least one key"):
        Pseudonymiser([])
