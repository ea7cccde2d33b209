"""trtdsl/jsonstrict.py: the JSON hooks refuse what Python's json would take silently."""

from __future__ import annotations

import json

import pytest

from trtdsl.jsonstrict import DuplicateKey, no_constant, unique_keys


def test_nan_infinity_and_repeated_keys_are_refused():
    for text in ('{"a": NaN}', "[Infinity]", "-Infinity"):
        with pytest.raises(ValueError, match=r"is not a JSON number"):
            json.loads(text, parse_constant=no_constant)
    with pytest.raises(DuplicateKey, match=r"key 'a' appears twice") as e:
        json.loads('{"a": 1, "b": {"c": 2}, "a": 3}', object_pairs_hook=unique_keys)
    assert e.value.key == "a"
    assert json.loads('{"a": 1.5, "b": {"a": 2}}', parse_constant=no_constant, object_pairs_hook=unique_keys) == {
        "a": 1.5, "b": {"a": 2}
    }  # fmt: skip
