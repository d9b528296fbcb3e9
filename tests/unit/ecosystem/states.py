"""The states a Model or ModelPipeline goes through, and the health Argo CD and kstatus must show.

`MODEL_STATES` drives `plan_model` (the code the handlers run) pass by pass from an empty status
and wraps each resulting status in a complete Model object, so the Argo CD and kstatus checks
see exactly what the operator would write, without a cluster. `EXPECTED` maps every state name
(these, and the pipeline states the cluster test captures) to the Argo CD health and kstatus
status it must show; the testdata files under deploy/argocd are named after the states. Pure;
decisions are made with `analysis.decide`.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

from modelops import contract
from modelops.operator.analysis import RollbackPolicy, WindowStats, decide
from modelops.operator.rollout import PlanInput, RevisionState, plan_model
from modelops.operator.spec import parse_model
from tests.factories import SHA_A, SHA_B, model_spec

T0 = 1_700_000_000.0
BAKE = {"bakeWindow": "5m", "window": "1m", "interval": "10s", "consecutiveBreaches": 1,
        "minRequests": 10, "errorRateThreshold": 0.05}
POLICY = RollbackPolicy.from_spec(BAKE)
BREACHING = decide(POLICY, WindowStats(requests=200, errors=40), previous_breaches=0)
UNMEASURED = decide(POLICY, None, previous_breaches=0, unavailable_reason="connection refused")


@dataclass
class ModelWorld:
    """A Model's spec, generation and status, and the revisions the cluster shows as ready."""

    spec: dict = field(default_factory=lambda: model_spec(rollback=BAKE))
    generation: int = 1
    status: dict = field(default_factory=dict)
    now: float = T0
    ready: set = field(default_factory=set)
    failures: dict = field(default_factory=dict)
    existing: set = field(default_factory=set)

    def apply(self, **spec) -> "ModelWorld":
        self.spec = model_spec(rollback=BAKE, **spec)
        self.generation += 1
        return self

    def step(self, seconds: float = 0, decision=None) -> "ModelWorld":
        self.now += seconds
        observed = {rev: RevisionState(replicas=2, ready=2 if rev in self.ready else 0,
                                       failure=self.failures.get(rev, ""))
                    for rev in self.existing}
        plan = plan_model(PlanInput(name="iris", spec=parse_model(self.spec),
                                    generation=self.generation, status=self.status,
                                    observed=observed, now=self.now, decision=decision))
        self.status = plan.status
        self.existing = (self.existing | set(plan.deployments)) - set(plan.delete)
        return self

    def serve_current(self, seconds: float = 5) -> "ModelWorld":
        self.ready.add(parse_model(self.spec).revision)
        return self.step(seconds)

    def body(self) -> dict:
        return {"apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
                "metadata": {"name": "iris", "namespace": "demo", "uid": "0d5e-iris",
                             "generation": self.generation, "resourceVersion": "42",
                             "creationTimestamp": "2023-11-14T22:13:20Z"},
                "spec": copy.deepcopy(self.spec), "status": copy.deepcopy(self.status)}


def _serving_v1() -> ModelWorld:
    return ModelWorld().step().serve_current().step(301)


def _stale() -> dict:
    body = _serving_v1().body()
    body["metadata"]["generation"] += 1  # the spec changed; the operator has not seen it yet
    body["spec"]["version"] = "2"
    return body


def _rolled_back() -> ModelWorld:
    world = _serving_v1().apply(version="2", sha256=SHA_B).step()
    return world.serve_current().step(10, decision=BREACHING)


def _checksum_mismatch() -> ModelWorld:
    world = _serving_v1().apply(version="2", sha256=SHA_B).step()
    world.failures[parse_model(world.spec).revision] = (
        f"ChecksumMismatch: artifact sha256 is {SHA_A[:12]}... but spec says {SHA_B[:12]}...")
    return world.step(5)


def _suspended() -> ModelWorld:
    world = _serving_v1()
    return world.apply(suspend=True).step()


@dataclass(frozen=True)
class State:
    name: str
    build: Callable[[], dict]
    argocd: str
    kstatus: str


def _created() -> dict:
    body = ModelWorld().body()
    del body["status"]  # as the API server returns it on create, before the operator's first pass
    return body


MODEL_STATES = [
    # kstatus reads "no observedGeneration and no conditions" as Current: it cannot tell yet
    State("created", _created, "Progressing", "Current"),
    State("rolling-out-first", lambda: ModelWorld().step().body(), "Progressing", "InProgress"),
    State("baking", lambda: ModelWorld().step().serve_current().body(), "Progressing",
          "InProgress"),
    State("serving", lambda: _serving_v1().body(), "Healthy", "Current"),
    State("metrics-unavailable", lambda: _serving_v1().step(10, decision=UNMEASURED).body(),
          "Healthy", "Current"),
    State("rolling-out-second",
          lambda: _serving_v1().apply(version="2", sha256=SHA_B).step().body(),
          "Progressing", "InProgress"),
    State("stale-generation", _stale, "Progressing", "InProgress"),
    State("stalled-checksum-mismatch", lambda: _checksum_mismatch().body(), "Degraded", "Failed"),
    State("progress-deadline-exceeded",
          lambda: _serving_v1().apply(version="2", sha256=SHA_B).step().step(601).body(),
          "Degraded", "Failed"),
    State("rolled-back", lambda: _rolled_back().body(), "Degraded", "Failed"),
    # kstatus has no "degraded but serving": Ready=True with Degraded=True reads as Current
    State("degraded-after-promotion", lambda: _serving_v1().step(10, decision=BREACHING).body(),
          "Degraded", "Current"),
    State("no-previous-version",
          lambda: ModelWorld().step().serve_current().step(10, decision=BREACHING).body(),
          "Degraded", "Current"),
    # kstatus has no "suspended": the operator's Ready=False/Suspended reads as InProgress
    State("suspended", lambda: _suspended().body(), "Suspended", "InProgress"),
]


# ModelPipeline states, captured from the real operator by tests/cluster/test_ecosystem_live.py
PIPELINE_EXPECTED = {
    "created": ("Progressing", "Current"),
    "stalled-step-missing": ("Degraded", "Failed"),
    "waiting-for-steps": ("Progressing", "InProgress"),
    "waiting-for-router": ("Progressing", "InProgress"),
    "ready": ("Healthy", "Current"),
    "stale-generation": ("Progressing", "InProgress"),
    # the pipeline keeps computing Ready while suspended, so kstatus sees Current
    "suspended": ("Suspended", "Current"),
}
EXPECTED = {
    contract.MODEL_KIND: {s.name: (s.argocd, s.kstatus) for s in MODEL_STATES},
    contract.PIPELINE_KIND: PIPELINE_EXPECTED,
}
