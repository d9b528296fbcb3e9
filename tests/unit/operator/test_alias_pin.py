"""Alias pinning in a Model's pass (alias_pin): a table with a fake resolver, the status it writes,
and the TTL cache in front of the tracking server."""

from __future__ import annotations

import pytest

from modelops import contract as c
from modelops.operator import alias_pin
from modelops.operator.conditions import apply_all
from modelops.operator.spec import parse_model
from modelops.serving.failures import StartupFailure

URI = "models:/iris@champion"
SHA = "a" * 64


def spec_of(uri=URI, rollout=None):
    artifact = {"uri": uri, "sha256": SHA}
    if rollout:
        artifact["mlflow"] = {"aliasRollout": rollout}
    return parse_model({"version": "1", "artifact": artifact})


def answers(value):
    """A fake resolver: a version, or a StartupFailure to raise."""
    calls = []

    def resolve(uri, tracking_uri):
        calls.append((uri, tracking_uri))
        if isinstance(value, StartupFailure):
            raise value
        return value
    resolve.calls = calls
    return resolve


def recorded(version, alias_version=None, alias="iris@champion"):
    return {"mlflow": {"alias": alias, "version": version, "aliasVersion": alias_version or version}}


DOWN = StartupFailure("DownloadFailed", "models:/iris@champion: http://127.0.0.1:9: ConnectionError")
UNKNOWN = StartupFailure("ArtifactNotFound", "alias champion not found")


@pytest.mark.parametrize("case, status, rollout, annotations, now, uri, event, moved, resolved", [
    ("first resolution", {}, None, {}, "3", "models:/iris/3", "MlflowAliasResolved", "False", "True"),
    ("same version", recorded("3"), None, {}, "3", "models:/iris/3", None, None, "True"),
    ("moved, Manual keeps it", recorded("3"), None, {}, "4", "models:/iris/3",
     "MlflowAliasMoved", "True", "True"),
    ("moved, already reported", recorded("3", "4"), None, {}, "4", "models:/iris/3", None, None, "True"),
    ("moved, Auto rolls out", recorded("3"), "Auto", {}, "4", "models:/iris/4",
     "MlflowAliasMoved", "False", "True"),
    ("Auto after a Manual report", recorded("3", "4"), "Auto", {}, "4", "models:/iris/4",
     "MlflowAliasMoved", "False", "True"),
    ("annotation says Auto", recorded("3"), "Manual", {c.ANNOTATION_MLFLOW_ALIAS_ROLLOUT: "Auto"},
     "4", "models:/iris/4", "MlflowAliasMoved", "False", "True"),
    ("annotation says Manual", recorded("3"), "Auto", {c.ANNOTATION_MLFLOW_ALIAS_ROLLOUT: "Manual"},
     "4", "models:/iris/3", "MlflowAliasMoved", "True", "True"),
    ("another alias recorded", recorded("1", alias="iris@old"), None, {}, "5", "models:/iris/5",
     "MlflowAliasResolved", "False", "True"),
    ("unreachable, version recorded", recorded("3"), None, {}, DOWN, "models:/iris/3",
     "MlflowAliasUnresolved", None, "False"),
    ("unknown alias, version recorded", recorded("3"), None, {}, UNKNOWN, "models:/iris/3",
     "MlflowAliasUnresolved", None, "False"),
])
def test_pin_table(case, status, rollout, annotations, now, uri, event, moved, resolved):
    pinned = alias_pin.pin(spec_of(rollout=rollout), status, annotations, answers(now))
    assert pinned.spec.artifact.uri == uri, case
    assert pinned.spec.artifact.sha256 == SHA and pinned.spec.version == "1"
    assert [e[1] for e in pinned.events] == ([event] if event else []), case
    assert (pinned.conditions.get("AliasMoved") or (None,))[0] == moved, case
    assert pinned.conditions["AliasResolved"][0] == resolved, case
    if isinstance(now, StartupFailure):
        assert pinned.mlflow is None  # the record is kept as it is
        assert pinned.conditions["AliasResolved"][1] == now.reason
        assert now.message in pinned.conditions["AliasResolved"][2]
        assert "still serving version 3" in pinned.events[0][2]
    else:
        assert pinned.mlflow["aliasVersion"] == now and pinned.mlflow["version"] == uri.rsplit("/")[-1]


@pytest.mark.parametrize("failure, stalled, reconciling", [(DOWN, "False", "True"),
                                                          (UNKNOWN, "True", None)])
def test_never_resolved_serves_nothing_and_says_why(failure, stalled, reconciling):
    pinned = alias_pin.pin(spec_of(), {}, {}, answers(failure))
    assert pinned.spec is None and pinned.mlflow is None
    ready = pinned.conditions["Ready"]
    assert ready[:2] == ("False", "MlflowAliasUnresolved") and failure.message in ready[2]
    assert pinned.conditions["Stalled"][0] == stalled
    assert (pinned.conditions["Reconciling"] or (None,))[0] == reconciling
    assert [e[:2] for e in pinned.events] == [("Warning", "MlflowAliasUnresolved")]


def test_a_failure_is_posted_once_not_on_every_pass():
    pinned = alias_pin.pin(spec_of(), recorded("3"), {}, answers(DOWN))
    status = alias_pin.report({**recorded("3")}, pinned, now="t", generation=1)
    again = alias_pin.pin(spec_of(), status, {}, answers(DOWN))
    assert again.events == [] and again.spec.artifact.uri == "models:/iris/3"
    other = alias_pin.pin(spec_of(), status, {}, answers(UNKNOWN))  # another reason: said again
    assert [e[1] for e in other.events] == ["MlflowAliasUnresolved"]
    back = alias_pin.pin(spec_of(), status, {}, answers("3"))
    assert back.conditions["AliasResolved"][:2] == ("True", "Resolved")


def test_other_uris_pass_through_and_lose_the_alias_record():
    spec = spec_of("models:/iris/2")
    resolve = answers("9")
    pinned = alias_pin.pin(spec, recorded("3"), {}, resolve)
    assert pinned.spec is spec and resolve.calls == [] and pinned.events == []
    conditions = apply_all([], {"AliasMoved": ("True", "MlflowAliasMoved", "x")}, now="t", generation=1)
    status = alias_pin.report({**recorded("3"), "conditions": conditions}, pinned, now="t", generation=2)
    assert "mlflow" not in status and status["conditions"] == []


def test_report_writes_the_record_and_conditions():
    pinned = alias_pin.pin(spec_of(), {}, {}, answers("3"))
    status = alias_pin.report({"servingVersion": "1"}, pinned, now="t", generation=4)
    assert status["mlflow"] == {"alias": "iris@champion", "version": "3", "aliasVersion": "3",
                                "sha256": SHA}
    types = {c["type"]: (c["status"], c["observedGeneration"]) for c in status["conditions"]}
    assert types == {"AliasMoved": ("False", 4), "AliasResolved": ("True", 4)}


def test_each_version_is_its_own_revision():
    v3 = alias_pin.pin(spec_of(), {}, {}, answers("3")).spec
    v4 = alias_pin.pin(spec_of(), {}, {}, answers("4")).spec
    assert v3.revision != v4.revision
    assert alias_pin.pin(spec_of(), recorded("3", "4"), {}, answers("4")).spec.revision == v3.revision


def test_the_tracking_uri_of_the_spec_is_passed():
    spec = parse_model({"version": "1", "artifact": {"uri": URI, "sha256": SHA, "mlflow": {
        "trackingUri": "http://mlflow.ml:5000"}}})
    resolve = answers("3")
    alias_pin.pin(spec, {}, {}, resolve)
    assert resolve.calls == [(URI, "http://mlflow.ml:5000")]


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_cache_keeps_an_answer_for_its_ttl():
    clock, versions = Clock(), iter(["3", "4", "7"])
    calls = []

    def resolve(uri, tracking):
        calls.append(uri)
        return next(versions)
    cache = alias_pin.AliasCache(resolve, ttl=30, clock=clock)
    assert [cache(URI, "") for _ in range(5)] == ["3"] * 5 and len(calls) == 1
    clock.now += 29.9
    assert cache(URI, "") == "3" and len(calls) == 1
    clock.now += 0.1
    assert cache(URI, "") == "4" and len(calls) == 2
    assert cache("models:/other@a", "") == "7" and len(calls) == 3  # another key: its own entry


def test_cache_keeps_failures_too():
    clock, calls = Clock(), []

    def resolve(uri, tracking):
        calls.append(uri)
        if len(calls) == 1:
            raise DOWN
        return "3"
    cache = alias_pin.AliasCache(resolve, ttl=5, clock=clock)
    for _ in range(3):
        with pytest.raises(StartupFailure, match="DownloadFailed"):
            cache(URI, "")
    assert len(calls) == 1
    clock.now += 5
    assert cache(URI, "") == "3" and len(calls) == 2


def test_cache_keys_by_tracking_server():
    calls = []
    cache = alias_pin.AliasCache(lambda uri, tracking: calls.append(tracking) or tracking[-1],
                                 ttl=60, clock=Clock())
    assert (cache(URI, "http://a:1"), cache(URI, "http://b:2"), cache(URI, "http://a:1")) == ("1", "2", "1")
    assert calls == ["http://a:1", "http://b:2"]


def test_settings_read_the_ttl_once():
    from modelops.operator.settings import OperatorSettings
    s = OperatorSettings.from_env({"MODELOPS_OPERATOR_MLFLOW_ALIAS_TTL_SECONDS": "2.5"})
    assert s.mlflow_alias_ttl_seconds == 2.5 and OperatorSettings().mlflow_alias_ttl_seconds == 30.0


@pytest.mark.parametrize("case, record_sha, spec_sha, now, uri", [
    ("moved, sha256 unchanged: Manual holds", SHA, SHA, "4", "models:/iris/3"),
    ("moved, new sha256 accepts it", SHA, "b" * 64, "4", "models:/iris/4"),
    ("not moved, new sha256: same version", SHA, "b" * 64, "3", "models:/iris/3"),
    ("record from before sha256 was kept", None, "b" * 64, "4", "models:/iris/3"),
])
def test_a_new_sha256_accepts_a_moved_alias(case, record_sha, spec_sha, now, uri):
    status = recorded("3")
    if record_sha:
        status["mlflow"]["sha256"] = record_sha
    spec = parse_model({"version": "1", "artifact": {"uri": URI, "sha256": spec_sha}})
    pinned = alias_pin.pin(spec, status, {}, answers(now))
    assert pinned.spec.artifact.uri == uri, case
    assert pinned.mlflow["sha256"] == spec_sha and pinned.spec.artifact.sha256 == spec_sha
