"""The audit log's canonical JSON, written field by field, is byte for byte what
``json.dumps(..., sort_keys=True)`` of the event gives: every hash stored before the
faster writer (and every hash a third party recomputes from the documented formula)
still verifies."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from hocba.models import audit

_text = st.text(max_size=40)  # any code point but surrogates: quotes, controls, Vietnamese
_small_int = st.integers(min_value=-(10**15) + 1, max_value=10**15 - 1)
_json_leaf = st.none() | st.booleans() | _small_int | _text
_payload = st.dictionaries(
    _text,
    st.recursive(
        _json_leaf,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
        max_leaves=12,
    ),
    max_size=5,
)
_event = st.fixed_dictionaries(
    {
        "actor_id": st.none() | _small_int,
        "actor": _text,
        "action": _text,
        "record_id": st.none() | _small_int,
        "from_state": st.none() | _text,
        "to_state": st.none() | _text,
        "reason": st.none() | _text,
        "payload": _payload,
    }
)
_instant = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.just(dt.UTC)
)


def _reference(chain: str, seq: int, at: dt.datetime, ev: dict[str, Any]) -> bytes:
    """The formula as documented: json.dumps of the whole event, sorted keys, compact."""
    body = {
        "chain": chain,
        "seq": seq,
        "at": at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
        **ev,
    }
    return json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


@settings(max_examples=400, deadline=None)
@given(chain=_text, seq=st.integers(min_value=1, max_value=10**12), at=_instant, ev=_event)
def test_canonical_is_sorted_compact_json(
    chain: str, seq: int, at: dt.datetime, ev: dict[str, Any]
) -> None:
    assert audit._canonical(chain, seq, at, ev) == _reference(chain, seq, at, ev)
    prev = hashlib.sha256(chain.encode()).hexdigest()
    assert (
        audit.event_hash(prev, chain, seq, at, ev)
        == hashlib.sha256(prev.encode() + _reference(chain, seq, at, ev)).hexdigest()
    )


def test_a_changed_field_changes_the_bytes() -> None:
    ev: dict[str, Any] = {
        "actor_id": 7,
        "actor": "Nguyễn Thị Hoa",
        "action": "teacher_sign",
        "record_id": 42,
        "from_state": "teacher_review",
        "to_state": "teacher_signed",
        "reason": None,
        "payload": {"lookup_code": "0b5f7f0e-7a4f-4c3e-9c7b-1d2e3f4a5b6c"},
    }
    at = dt.datetime(2027, 5, 20, 8, 30, tzinfo=dt.UTC)
    base = audit._canonical("school:79000701", 3, at, ev)
    assert base.decode().startswith('{"action":"teacher_sign","actor":"Nguyễn Thị Hoa",')
    for key, value in [
        ("actor_id", 8),
        ("actor_id", None),
        ("reason", "ký lại"),
        ("record_id", 43),
        ("payload", {"lookup_code": "x"}),
        ("to_state", "principal_signed"),
    ]:
        assert audit._canonical("school:79000701", 3, at, {**ev, key: value}) != base
    assert audit._canonical("school:79000701", 4, at, ev) != base
    assert audit._canonical("school:79000702", 3, at, ev) != base
    later = at + dt.timedelta(microseconds=1)
    assert audit._canonical("school:79000701", 3, later, ev) != base
