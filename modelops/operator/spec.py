"""Parse Model and ModelPipeline specs into frozen dataclasses (pure).

The API server has already validated the schema (CRD + CEL rules), so parsing here is about
shape, defaults for objects created before a default existed, and the few derived values the
operator needs: the artifact's revision (one Deployment per version + sha256) and how the
artifact reaches the pod. Errors raise `SpecError` naming the field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any, Mapping

from modelops.operator.analysis import RollbackPolicy

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

    @property
    def revision(self) -> str:
        # a models:/ URI is part of the revision: an alias pinned to another registry version
        # is another Deployment (unchanged for every other scheme)
        pin = self.artifact.uri if self.artifact.scheme == "models" else ""
        return revision_of(self.version, self.artifact.sha256 + pin)

    def at_version(self, version: str, artifact: Artifact) -> "ModelSpec":
        """This spec, serving another (older) version: how warm Deployments are rebuilt."""
        return replace(self, version=version, artifact=artifact)


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


def revision_of(version: str, sha256: str) -> str:
    """Short, stable hash naming one version's Deployment."""
    return hashlib.sha256(f"{version}\0{sha256}".encode()).hexdigest()[:10]


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
