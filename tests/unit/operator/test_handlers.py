"""The handler set the operator registers with kopf, and what its settings rely on: with only
on.event, index and activity handlers, kopf never reads a diff base, so `NoDiffBase` (which
skips building one on every watch event) changes nothing but the cost."""

from __future__ import annotations

import kopf

import modelops.operator.handlers  # noqa: F401  (registers the handlers)
from modelops.operator.handlers.lifecycle import NoDiffBase


def test_no_handler_reads_kopfs_diff_base():
    registry = kopf.get_default_registry()
    assert registry._watching.get_all_handlers() and registry._indexing.get_all_handlers()
    assert not registry._changing.get_all_handlers()  # on.create/update/resume/delete/field
    assert not registry._spawning.get_all_handlers()  # daemons and timers
    assert not registry._webhooks.get_all_handlers()


def test_the_diff_base_is_empty_and_kopf_finds_no_difference():
    from kopf._cogs.structs import diffs  # what kopf's cause detection computes from it
    storage = NoDiffBase()
    body = kopf.Body({"metadata": {"name": "iris"}, "spec": {"version": "v1"}})
    old, new = storage.fetch(body=body), storage.build(body=body, extra_fields=[])
    assert (old, new) == (None, None) and not diffs.diff(old, new)
    patch = kopf.Patch()
    storage.store(body=body, patch=patch, essence=new)
    assert not patch  # nothing is written to the object


def test_the_index_keeps_a_detached_copy_without_managed_fields():
    from modelops.operator.handlers.indexes import detached
    raw = {"apiVersion": "modelops.io/v1alpha1", "kind": "Model",
           "metadata": {"name": "iris", "uid": "u-1", "managedFields": [{"manager": "kubectl"}]},
           "spec": {"version": "1"}, "status": {"conditions": [{"type": "Ready"}]}}
    copy = detached(kopf.Body(raw))
    assert copy == {**raw, "metadata": {"name": "iris", "uid": "u-1"}}
    raw["status"]["conditions"][0]["type"] = "Changed"
    assert copy["status"]["conditions"][0]["type"] == "Ready"
    assert "managedFields" in raw["metadata"]
