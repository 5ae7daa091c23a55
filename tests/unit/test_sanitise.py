"""The one cleaning of VideoDB's text: what comes out is always accepted by SQS, EventBridge
and Step Functions, and text that needed no cleaning is unchanged."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st
from videodb_retry.rules.sanitise import (
    MAX_RESULT_BYTES,
    MAX_TEXT_CHARS,
    clean_result,
    clean_text,
    clean_value,
)

from videodb_retry_local.stack.aws_limits import _SQS_REFUSED_CHARS

JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@given(st.text(), st.integers(min_value=20, max_value=2000))
def test_cleaned_text_is_in_the_sqs_character_set_and_capped(text, cap):
    cleaned = clean_text(text, cap)
    assert not _SQS_REFUSED_CHARS.search(cleaned)
    assert len(cleaned) <= cap
    cleaned.encode("utf-8")  # no lone surrogates left


@given(
    st.text(
        st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"], exclude_characters="\ufffe\uffff"),
        max_size=MAX_TEXT_CHARS,
    )
)
def test_text_that_needs_no_cleaning_is_kept_as_it_is(text):
    assert clean_text(text) == text


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, inner in value.items():
            yield key
            yield from _strings(inner)
    elif isinstance(value, list):
        for inner in value:
            yield from _strings(inner)


@given(JSONISH)
def test_every_string_of_a_json_value_keys_included_is_cleaned(value):
    assert not any(_SQS_REFUSED_CHARS.search(s) for s in _strings(clean_value(value)))


def test_a_result_too_large_is_replaced_by_a_note_of_its_size():
    # Each string is capped first; many of them can still be too large together.
    huge = {f"file{i}": "x" * 1000 for i in range(MAX_RESULT_BYTES // 1000 + 1)}
    assert clean_result(huge) == {"truncated": True, "bytes": len(json.dumps(clean_value(huge)).encode())}
    assert clean_result({"name": "video\x00.mp4"}) == {"name": "video\ufffd.mp4"}
