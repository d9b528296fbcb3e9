"""Pod wiring for s3:// and models:/ artifacts (pure): plain env, Secret refs, CA bundle volume.

Secrets reach only the init container, as env `valueFrom.secretKeyRef` (the kubelet reads them,
the operator never does, so it needs no RBAC on Secret contents) and never the command line. The
names are the SDKs' own (AWS_ACCESS_KEY_ID, ..., MLFLOW_TRACKING_TOKEN). A CA bundle from a
ConfigMap or Secret is mounted read-only at contract.CA_BUNDLE_MOUNT. `builders` calls these.
"""

from __future__ import annotations

from modelops import contract as c
from modelops.operator.spec import Artifact, SecretKey

CA_VOLUME = "artifact-ca"


def source_env(artifact: Artifact) -> dict[str, str]:
    """Non-secret settings of the artifact's source, for both containers."""
    env: dict[str, str] = {}
    s3, mlflow = artifact.s3, artifact.mlflow
    if artifact.scheme == "s3" and s3 is not None:
        for name, value in ((c.ENV_S3_ENDPOINT, s3.endpoint), (c.ENV_S3_REGION, s3.region),
                            (c.ENV_S3_ADDRESSING, s3.addressing)):
            if value:
                env[name] = value
        ca = s3.ca_config_map or s3.ca_secret
        if ca is not None:
            env[c.ENV_S3_CA_BUNDLE] = f"{c.CA_BUNDLE_MOUNT}/{ca.key}"
    if artifact.scheme == "models" and mlflow is not None:
        if mlflow.tracking_uri:
            env[c.ENV_MLFLOW_TRACKING_URI] = mlflow.tracking_uri
        if mlflow.ca_config_map is not None:
            env[c.ENV_MLFLOW_CA_BUNDLE] = f"{c.CA_BUNDLE_MOUNT}/{mlflow.ca_config_map.key}"
    return env


def secret_env(artifact: Artifact) -> list[dict]:
    """env entries with secretKeyRef for the init container (empty when the pod's identity is used)."""
    refs: list[tuple[str, SecretKey | None]] = []
    if artifact.scheme == "s3" and artifact.s3 is not None:
        refs = [(c.ENV_AWS_ACCESS_KEY_ID, artifact.s3.access_key),
                (c.ENV_AWS_SECRET_ACCESS_KEY, artifact.s3.secret_key),
                (c.ENV_AWS_SESSION_TOKEN, artifact.s3.session_token)]
    if artifact.scheme == "models" and artifact.mlflow is not None:
        refs = [(c.ENV_MLFLOW_TOKEN, artifact.mlflow.token)]
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            for name, ref in refs if ref is not None]


def ca_volume(artifact: Artifact) -> tuple[dict, dict] | None:
    """(volume, mount) for the CA bundle, or None."""
    s3, mlflow = artifact.s3, artifact.mlflow
    config_map = (s3.ca_config_map if artifact.scheme == "s3" and s3 else
                  mlflow.ca_config_map if artifact.scheme == "models" and mlflow else None)
    secret = s3.ca_secret if artifact.scheme == "s3" and s3 else None
    if config_map is not None:
        volume = {"name": CA_VOLUME, "configMap": {"name": config_map.name}}
    elif secret is not None:
        volume = {"name": CA_VOLUME, "secret": {"secretName": secret.name}}
    else:
        return None
    return volume, {"name": CA_VOLUME, "mountPath": c.CA_BUNDLE_MOUNT, "readOnly": True}
