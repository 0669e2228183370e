"""StagedTable writes changelog records itself: they must be the bytes Faust's own json codec writes,
or its recovery (and the topic's compaction, which compares key bytes) would see other records."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.agents.enrich import thread_state
from streams.agents.tablestore import _changelog_encoders

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(key=st.text(), value=json_values)
def test_changelog_records_are_fausts_own_bytes(key: str, value: Any) -> None:
    encode_key, encode_value = _changelog_encoders(thread_state)
    changelog = thread_state.changelog_topic
    assert encode_key(key) == changelog.prepare_key(key, thread_state.key_serializer)[0]
    assert encode_value(value) == changelog.prepare_value(value, thread_state.value_serializer)[0]
