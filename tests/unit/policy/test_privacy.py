from __future__ import annotations

import hashlib
import hmac

import msgspec
import pytest

from shared.contract.registry import default_registry
from shared.policy.privacy import PiiRules, Pseudonymiser


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
    cleaned = PiiRules.of_schema(spec.props_schema).apply(props, p.pseudonym_hex)
    assert cleaned == {"rating": 4, "contact_email": p.pseudonym("a@example.com")[1]}
    assert props["contact_email"] == "a@example.com"  # input untouched


def test_events_without_pii_pass_through() -> None:
    spec = default_registry().get("node.expand", 1)
    assert not PiiRules.of_schema(spec.props_schema)


def test_one_rule_for_dicts_and_structs() -> None:
    """Regression: the x-pii rule had two implementations (fast and slow way); one now."""
    p = Pseudonymiser([("k1", "secret-one-long-enough")])
    rules = PiiRules(hashed=("email", "class"), dropped=("url",))
    Props = msgspec.defstruct(
        "Props",
        [("email", str | None), ("field_1", str), ("url", str | msgspec.UnsetType, msgspec.UNSET)],
        rename={"field_1": "class"},
    )
    as_dict = {"email": "a@x", "class": "c", "url": "https://x/"}
    as_struct = msgspec.json.decode(msgspec.json.encode(as_dict), type=Props)
    from_dict = rules.apply(as_dict, p.pseudonym_hex)
    from_struct = msgspec.to_builtins(rules.apply(as_struct, p.pseudonym_hex))
    assert (
        from_dict == from_struct == {"email": p.pseudonym_hex("a@x"), "class": p.pseudonym_hex("c")}
    )
    assert rules.apply({"email": None}, p.pseudonym_hex) == {"email": None}


def test_repr_hides_secrets_and_empty_ring_is_refused() -> None:
    p = Pseudonymiser([("k1", "secret-one-long-enough")])
    assert "secret" not in repr(p).replace("keys", "")
    with pytest.raises(ValueError, match="at least one key"):
        Pseudonymiser([])
