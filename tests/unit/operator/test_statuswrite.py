"""StatusWriter: a pass that starts from the status our own write replaced waits for the watch,
and a write the API server found to change nothing (same resourceVersion back, so no watch
event will come) is never waited for: that once stopped every later pass of a Model in shadow,
whose status carried a null the server drops."""

from __future__ import annotations

import pytest

from modelops.operator import kube
from modelops.operator.shadow_gate import ShadowStats
from modelops.operator.statuswrite import StatusWriter

BODY = {"metadata": {"uid": "u", "namespace": "ns", "name": "iris", "resourceVersion": "7"}}


@pytest.mark.parametrize(("answered", "stale"), [("8", True), ("7", False)])
def test_only_a_write_that_changed_something_is_waited_for(monkeypatch, answered, stale):
    sent = []
    monkeypatch.setattr(kube, "patch_status",
                        lambda plural, ns, name, rv, patch: sent.append((rv, patch)) or answered)
    writer = StatusWriter()
    assert writer.write("models", BODY, {"a": 1}, {"a": 2})
    assert sent == [("7", {"a": 2})]
    assert writer.stale(BODY) is stale
    assert not writer.stale({"metadata": {**BODY["metadata"], "resourceVersion": answered
                                          if stale else "9"}})


def test_nothing_to_write_sends_nothing(monkeypatch):
    monkeypatch.setattr(kube, "patch_status", lambda *a: pytest.fail("sent"))
    assert StatusWriter().write("models", BODY, {"a": 1}, {"a": 1})


def test_a_conflict_drops_the_pass(monkeypatch):
    def conflict(*_):
        raise kube.Conflict("models/iris: Conflict")
    monkeypatch.setattr(kube, "patch_status", conflict)
    writer = StatusWriter()
    assert not writer.write("models", BODY, {"a": 1}, {"a": 2})
    assert not writer.stale(BODY)


def test_shadow_evidence_in_status_holds_no_nulls():
    """Before any row or copy the ratios are unknown: left out, not null."""
    assert ShadowStats().as_status() == {"rows": 0, "disagreements": 0, "copies": {}}
    shown = ShadowStats(rows=10, disagreements=1, outcomes={"mirrored": 10}).as_status()
    assert shown["disagreement"] == 0.1 and shown["errorRate"] == 0.0
