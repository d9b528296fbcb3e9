"""status_patch is a JSON merge patch: applying it (RFC 7386) to the old status gives the new."""

from __future__ import annotations

import pytest

from modelops.operator.kube import status_patch


def merge_patch(target, patch):
    """RFC 7386 MergePatch, as the API server applies it."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


V1_WINDOW = {"revision": "r1", "result": "Passed", "quality": {"scoredRows": 300, "accuracy": 0.97}}
V2_WINDOW = {"revision": "r2", "result": "Passed"}  # v2's first window: no feedback scored yet


@pytest.mark.parametrize("old, new", [
    ({"analysis": V1_WINDOW}, {"analysis": V2_WINDOW}),  # the defect: v1's quality stayed
    ({"analysis": V2_WINDOW}, {"analysis": V1_WINDOW}),
    ({"rollback": {"reason": "A", "quality": {"x": 1}}}, {"rollback": {"reason": "B"}}),
    ({"a": {"b": {"c": 1, "d": 2}}}, {"a": {"b": {"c": 1}}}),
    ({"a": {"b": 1}}, {"a": 3}),
    ({"a": 3}, {"a": {"b": 1}}),
    ({"a": [1, 2], "b": 1}, {"a": [1]}),
    ({"a": {"b": 1}}, {"a": {"b": 1}}),
    ({}, {"a": {"b": {"c": 1}}}),
    ({"a": {"b": 1}}, {}),
])
def test_applying_the_patch_gives_the_new_status(old, new):
    assert merge_patch(old, status_patch(old, new)) == new


def test_unchanged_keys_are_left_out_and_a_changed_one_is_sent_whole_with_its_deletions():
    assert status_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 2}}) == {}
    assert status_patch({"a": {"b": 1, "c": 2}, "d": 1}, {"a": {"b": 1, "c": 3}, "d": 1}) == {
        "a": {"b": 1, "c": 3}}
    assert status_patch({"analysis": V1_WINDOW}, {"analysis": V2_WINDOW}) == {
        "analysis": {**V2_WINDOW, "quality": None}}
