"""Parse Model and ModelPipeline specs into frozen dataclasses (pure).

The API server has already validated the schema (CRD + CEL rules), so parsing here is about
shape, defaults for objects created before a default existed, and the few derived values the
operator needs: the artifact's revision (one Deployment per version + sha256) and how the
artifact reaches the pod. A revision's identity is a hash of the version, the artifact's sha256
and every pod-affecting field (method, resources, serving settings, image), so a config-only
change rolls out, bakes and rolls back like a new version; `pod_record` and `from_record` turn
that part of a spec into the plain dict kept in `status.revisions` and back. Errors raise
`SpecError` naming the field.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from modelops.operator.analysis import RollbackPolicy
from modelops.operator.canary_gate import CanaryPolicy
from modelops.operator.shadow_gate import ShadowPolicy

URI_SCHEMES = ("file://", "http://", "https://", "pvc://", "configMap://", "s3://", "models:/")
STEP_INPUTS = ("previous", "features+previous")


class SpecError(ValueError):
    """A spec the operator cannot act on; the message names the field."""


@dataclass(frozen=True)
class SecretKey:
    """A key of a Secret (or ConfigMap) the pod reads; the operator never reads its value."""

    name: str
    key: str


@dataclass(frozen=True)
class S3Source:
    """spec.artifact.s3: where an s3:// artifact's store is and which Secret holds its keys."""

    endpoint: str = ""
    region: str = ""
    addressing: str = ""
    access_key: SecretKey | None = None
    secret_key: SecretKey | None = None
    session_token: SecretKey | None = None
    ca_config_map: SecretKey | None = None
    ca_secret: SecretKey | None = None


@dataclass(frozen=True)
class MlflowSource:
    """spec.artifact.mlflow: the tracking server, its token Secret and the alias policy."""

    tracking_uri: str = ""
    token: SecretKey | None = None
    ca_config_map: SecretKey | None = None
    alias_rollout: str = "Manual"


@dataclass(frozen=True)
class Artifact:
    uri: str
    sha256: str = ""
    format: str = ""
    s3: S3Source | None = None
    mlflow: MlflowSource | None = None
    trusted_types: tuple[str, ...] = ()
    """skops types trusted beyond its defaults (spec.artifact.trustedTypes)."""
    version_policy: str = ""
    """refuse | warn, or "" for the serving default (spec.artifact.sklearnVersionPolicy)."""

    @property
    def scheme(self) -> str:
        if self.uri.startswith("models:/"):
            return "models"
        return self.uri.split("://", 1)[0]

    @property
    def volume_source(self) -> tuple[str, str] | None:
        """(kind, name) of the volume the artifact lives on: ("pvc"|"configMap", name), or None."""
        if self.scheme in ("pvc", "configMap"):
            return self.scheme, self.uri.split("://", 1)[1].split("/", 1)[0]
        return None


@dataclass(frozen=True)
class ServingOptions:
    workers: int = 1
    threads: int = 4
    batch_max_size: int = 1
    batch_max_wait_ms: int = 5


@dataclass(frozen=True)
class ModelSpec:
    version: str
    artifact: Artifact
    method: str = "predict"
    replicas: int = 1
    resources: Mapping[str, Any] = field(default_factory=dict)
    image: str = ""
    serving: ServingOptions = ServingOptions()
    rollback: RollbackPolicy = RollbackPolicy()
    suspend: bool = False
    shadow: ShadowPolicy | None = None  # spec.rollout.shadow; not a pod field (same revision)
    canary: CanaryPolicy | None = None  # spec.rollout.canary; not a pod field either

    @property
    def revision(self) -> str:
        return revision_of(self.pod_record())

    def pod_record(self) -> dict[str, Any]:
        """Everything that shapes this revision's pods, as plain JSON (kept in status)."""
        s = self.serving
        return {"version": self.version, "sha256": self.artifact.sha256,
                "uri": self.artifact.uri, "format": self.artifact.format,
                "trustedTypes": list(self.artifact.trusted_types),
                "versionPolicy": self.artifact.version_policy,
                "method": self.method, "image": self.image,
                "resources": json.loads(json.dumps(dict(self.resources), sort_keys=True)),
                "serving": {"workers": s.workers, "threads": s.threads,
                            "batchMaxSize": s.batch_max_size,
                            "batchMaxWaitMs": s.batch_max_wait_ms}}

    def from_record(self, record: Mapping[str, Any]) -> "ModelSpec":
        """This spec serving another revision: its pod fields from the record, the rest
        (replicas, rollback policy, suspend) from the current spec."""
        s = record.get("serving") or {}
        return replace(
            self, version=record["version"],
            # where and how to fetch (s3/mlflow options) come from the current spec
            artifact=replace(self.artifact, uri=record.get("uri", ""),
                             sha256=record.get("sha256", ""), format=record.get("format", ""),
                             trusted_types=tuple(record.get("trustedTypes") or ()),
                             version_policy=record.get("versionPolicy", "")),
            method=record.get("method", "predict"), image=record.get("image", ""),
            resources=dict(record.get("resources") or {}),
            serving=ServingOptions(workers=int(s.get("workers", 1)),
                                   threads=int(s.get("threads", 4)),
                                   batch_max_size=int(s.get("batchMaxSize", 1)),
                                   batch_max_wait_ms=int(s.get("batchMaxWaitMs", 5))))


@dataclass(frozen=True)
class Step:
    name: str
    model: str
    input: str = "previous"


@dataclass(frozen=True)
class PipelineSpec:
    steps: tuple[Step, ...]
    timeout_seconds: float = 5.0
    replicas: int = 1
    image: str = ""
    suspend: bool = False


def revision_of(pod: Mapping[str, Any]) -> str:
    """Short, stable hash of a revision's pod fields (`pod_record`), naming its Deployment.

    The artifact's location is left out (the sha256 pins its content), except a models:/ URI
    (the registry version it names is part of the revision)."""
    uri = str(pod.get("uri", ""))
    # a models:/ URI stays in: an alias pinned to another registry version is another revision
    keep_uri = not pod.get("sha256") or uri.startswith("models:/")
    keyed = {k: v for k, v in pod.items() if k != "uri" or keep_uri}
    text = json.dumps(keyed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def parse_model(spec: Mapping[str, Any]) -> ModelSpec:
    version = spec.get("version")
    if not isinstance(version, str) or not version:
        raise SpecError("spec.version is required and must be a non-empty string")
    artifact = _parse_artifact(spec.get("artifact"))
    method = spec.get("method", "predict")
    if method not in ("predict", "predict_proba"):
        raise SpecError(f"spec.method must be predict or predict_proba, not {method!r}")
    serving = spec.get("serving") or {}
    batch = serving.get("batch") or {}
    try:
        rollback = RollbackPolicy.from_spec(spec.get("rollback") or {})
        shadow = ShadowPolicy.from_spec((spec.get("rollout") or {}).get("shadow"))
        canary = CanaryPolicy.from_spec((spec.get("rollout") or {}).get("canary"))
    except ValueError as error:
        raise SpecError(str(error)) from None
    return ModelSpec(
        version=version,
        artifact=artifact,
        method=method,
        replicas=int(spec.get("replicas", 1)),
        resources=dict(spec.get("resources") or {}),
        image=spec.get("image") or "",
        serving=ServingOptions(
            workers=int(serving.get("workers", 1)),
            threads=int(serving.get("threads", 4)),
            batch_max_size=int(batch.get("maxSize", 1)),
            batch_max_wait_ms=int(batch.get("maxWaitMs", 5)),
        ),
        rollback=rollback,
        suspend=bool(spec.get("suspend", False)),
        shadow=shadow,
        canary=canary,
    )


def _parse_artifact(artifact: Any) -> Artifact:
    if not isinstance(artifact, Mapping) or not artifact.get("uri"):
        raise SpecError("spec.artifact.uri is required")
    uri = str(artifact["uri"])
    if not uri.startswith(URI_SCHEMES):
        raise SpecError(f"spec.artifact.uri must start with one of {', '.join(URI_SCHEMES)}")
    sha256 = str(artifact.get("sha256") or "")
    if not sha256:
        raise SpecError("spec.artifact.sha256 is required for every artifact; "
                        "get it with `sha256sum model.joblib`")
    trusted = artifact.get("trustedTypes") or []
    if not isinstance(trusted, list) or not all(isinstance(t, str) and t for t in trusted):
        raise SpecError("spec.artifact.trustedTypes must be a list of type names")
    policy = str(artifact.get("sklearnVersionPolicy") or "")
    if policy not in ("", "refuse", "warn"):
        raise SpecError("spec.artifact.sklearnVersionPolicy must be refuse or warn")
    return Artifact(uri=uri, sha256=sha256, format=str(artifact.get("format") or ""),
                    trusted_types=tuple(trusted), version_policy=policy,
                    s3=_parse_s3(artifact.get("s3")), mlflow=_parse_mlflow(artifact.get("mlflow")))


def _secret_key(raw: Any, default_key: str) -> SecretKey | None:
    if not isinstance(raw, Mapping) or not raw.get("name"):
        return None
    return SecretKey(str(raw["name"]), str(raw.get("key") or default_key))


def _parse_s3(raw: Any) -> S3Source | None:
    if not isinstance(raw, Mapping):
        return None
    creds = raw.get("credentialsSecret") or {}
    name = creds.get("name") if isinstance(creds, Mapping) else None
    def key(field_name: str, default: str) -> SecretKey | None:
        return SecretKey(str(name), str(creds.get(field_name) or default)) if name else None
    return S3Source(
        endpoint=str(raw.get("endpoint") or ""), region=str(raw.get("region") or ""),
        addressing={"Path": "path", "VirtualHost": "virtual"}.get(str(raw.get("addressingStyle")), ""),
        access_key=key("accessKeyIdKey", "AWS_ACCESS_KEY_ID"),
        secret_key=key("secretAccessKeyKey", "AWS_SECRET_ACCESS_KEY"),
        session_token=(SecretKey(str(name), str(creds["sessionTokenKey"]))
                       if name and creds.get("sessionTokenKey") else None),
        ca_config_map=_secret_key(raw.get("caBundleConfigMap"), "ca.crt"),
        ca_secret=_secret_key(raw.get("caBundleSecret"), "ca.crt"))


def _parse_mlflow(raw: Any) -> MlflowSource | None:
    if not isinstance(raw, Mapping):
        return None
    return MlflowSource(tracking_uri=str(raw.get("trackingUri") or ""),
                        token=_secret_key(raw.get("tokenSecret"), "token"),
                        ca_config_map=_secret_key(raw.get("caBundleConfigMap"), "ca.crt"),
                        alias_rollout=str(raw.get("aliasRollout") or "Manual"))


def parse_pipeline(spec: Mapping[str, Any]) -> PipelineSpec:
    raw_steps = spec.get("steps") or []
    if not raw_steps:
        raise SpecError("spec.steps must list at least one step")
    steps = []
    for index, raw in enumerate(raw_steps):
        if not raw.get("name") or not raw.get("model"):
            raise SpecError(f"spec.steps[{index}] needs a name and a model")
        step_input = raw.get("input", "previous")
        if step_input not in STEP_INPUTS:
            raise SpecError(f"spec.steps[{index}].input must be one of {', '.join(STEP_INPUTS)}")
        steps.append(Step(name=raw["name"], model=raw["model"], input=step_input))
    names = [step.name for step in steps]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise SpecError(f"spec.steps names must be unique; repeated: {', '.join(duplicates)}")
    return PipelineSpec(
        steps=tuple(steps),
        timeout_seconds=float(spec.get("timeoutSeconds", 5)),
        replicas=int(spec.get("replicas", 1)),
        image=spec.get("image") or "",
        suspend=bool(spec.get("suspend", False)),
    )
