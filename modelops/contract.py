"""The contract between the operator and the serving image, in one place.

Everything that both sides must agree on lives here as an UPPER_CASE constant: the API group and
kinds, the environment variable names the operator injects and the server reads, the port, label
and annotation keys, the Prometheus metric names the rollback monitor scrapes, and the paths of
the termination message and artifact volume. A unit test checks that the operator's builders and
the serving settings use exactly these names. Pure data, no imports from the rest of the package.
"""

from typing import Final

# --- API -------------------------------------------------------------------------------------
API_GROUP: Final = "modelops.io"
API_VERSION: Final = "v1alpha1"
API_GROUP_VERSION: Final = f"{API_GROUP}/{API_VERSION}"
MODEL_KIND: Final = "Model"
MODEL_PLURAL: Final = "models"
PIPELINE_KIND: Final = "ModelPipeline"
PIPELINE_PLURAL: Final = "modelpipelines"

# --- Serving process: environment (all read by modelops.serving.settings) --------------------
ENV_PREFIX: Final = "MODELOPS_"
ENV_MODE: Final = "MODELOPS_MODE"  # "model" (default) or "pipeline"
ENV_MODEL_NAME: Final = "MODELOPS_MODEL_NAME"
ENV_MODEL_VERSION: Final = "MODELOPS_MODEL_VERSION"
ENV_ARTIFACT_URI: Final = "MODELOPS_ARTIFACT_URI"
ENV_ARTIFACT_SHA256: Final = "MODELOPS_ARTIFACT_SHA256"
ENV_ARTIFACT_FORMAT: Final = "MODELOPS_ARTIFACT_FORMAT"
ENV_ARTIFACT_DIR: Final = "MODELOPS_ARTIFACT_DIR"
ENV_METHOD: Final = "MODELOPS_METHOD"
ENV_PORT: Final = "MODELOPS_PORT"
ENV_HOST: Final = "MODELOPS_HOST"
ENV_WORKERS: Final = "MODELOPS_WORKERS"
ENV_THREADS: Final = "MODELOPS_THREADS"
ENV_MAX_BODY_BYTES: Final = "MODELOPS_MAX_BODY_BYTES"
ENV_TERMINATION_LOG: Final = "MODELOPS_TERMINATION_LOG"
ENV_SKOPS_TRUSTED_TYPES: Final = "MODELOPS_SKOPS_TRUSTED_TYPES"
ENV_SKLEARN_VERSION_POLICY: Final = "MODELOPS_SKLEARN_VERSION_POLICY"  # "refuse" | "warn"
ENV_DOWNLOAD_TIMEOUT: Final = "MODELOPS_DOWNLOAD_TIMEOUT_SECONDS"
ENV_DOWNLOAD_MAX_BYTES: Final = "MODELOPS_DOWNLOAD_MAX_BYTES"
ENV_BATCH_MAX_SIZE: Final = "MODELOPS_BATCH_MAX_SIZE"  # 0 or 1 = adaptive batching off
ENV_BATCH_MAX_WAIT_MS: Final = "MODELOPS_BATCH_MAX_WAIT_MS"
ENV_FEEDBACK_WINDOW: Final = "MODELOPS_FEEDBACK_WINDOW"
ENV_METRICS_DIR: Final = "PROMETHEUS_MULTIPROC_DIR"  # prometheus-client's own name
# Pipeline (router) mode
ENV_PIPELINE_NAME: Final = "MODELOPS_PIPELINE_NAME"
ENV_PIPELINE_STEPS: Final = "MODELOPS_PIPELINE_STEPS"  # JSON list of {name, model, url, input}
ENV_PIPELINE_TIMEOUT: Final = "MODELOPS_PIPELINE_TIMEOUT_SECONDS"

SERVING_COMMAND: Final = ("python", "-m", "modelops.serving")
FETCH_COMMAND: Final = ("python", "-m", "modelops.serving", "fetch")
DEFAULT_PORT: Final = 8080
PORT_NAME: Final = "http"
DEFAULT_TERMINATION_LOG: Final = "/dev/termination-log"
ARTIFACT_MOUNT: Final = "/var/lib/modelops/artifact"
SCRATCH_MOUNT: Final = "/tmp"

# --- HTTP paths ------------------------------------------------------------------------------
PATH_LIVE: Final = "/v2/health/live"
PATH_READY: Final = "/v2/health/ready"
PATH_METRICS: Final = "/metrics"

# --- Labels and annotations ------------------------------------------------------------------
LABEL_NAME: Final = "app.kubernetes.io/name"
LABEL_INSTANCE: Final = "app.kubernetes.io/instance"
LABEL_VERSION_APP: Final = "app.kubernetes.io/version"
LABEL_COMPONENT: Final = "app.kubernetes.io/component"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_PART_OF: Final = "app.kubernetes.io/part-of"
LABEL_MODEL: Final = "modelops.io/model"
LABEL_VERSION: Final = "modelops.io/version"
LABEL_REVISION: Final = "modelops.io/revision"  # short hash of version + sha256
LABEL_PIPELINE: Final = "modelops.io/pipeline"
MANAGED_BY: Final = "modelops"
ANNOTATION_RETRY: Final = "modelops.io/retry"
ANNOTATION_ROLLBACK_TO: Final = "modelops.io/rollback-to"
ANNOTATION_PROMOTE: Final = "modelops.io/promote"  # a version: skip its shadow gate (modelops promote)
ANNOTATION_ABORT: Final = "modelops.io/abort"  # a version: fail its shadow now (modelops abort)

# --- Metrics the serving image exports (the rollback monitor reads these) ---------------------
METRIC_REQUESTS: Final = "modelops_requests_total"  # labels: model, version, protocol, code
CODE_NOT_READY: Final = "not_ready"
"""`code` of a request a worker answered 503 while its model loads: not a 5xx error."""
METRIC_LATENCY: Final = "modelops_request_duration_seconds"  # labels: model, version, protocol
METRIC_MODEL_ERRORS: Final = "modelops_model_errors_total"  # labels: model, version
METRIC_INFLIGHT: Final = "modelops_inflight_requests"  # labels: model, version
METRIC_LOAD_SECONDS: Final = "modelops_model_load_seconds"  # labels: model, version
METRIC_ARTIFACT_INFO: Final = "modelops_artifact"  # Info: model, version, sha256, format
METRIC_STEP_REQUESTS: Final = "modelops_pipeline_step_requests_total"  # pipeline, step, code
METRIC_STEP_LATENCY: Final = "modelops_pipeline_step_duration_seconds"  # pipeline, step
METRIC_QUALITY: Final = "modelops_model_quality"  # model, version, metric (accuracy|rmse)

# --- Operator process -------------------------------------------------------------------------
OPERATOR_NAMESPACE: Final = "modelops-system"
OPERATOR_HEALTH_PORT: Final = 8081  # kopf liveness: GET /healthz
OPERATOR_METRICS_PORT: Final = 9090  # the operator's own /metrics
DEFAULT_SERVING_IMAGE: Final = "modelops/serving:0.1.0"
METRIC_ROLLBACKS: Final = "modelops_rollbacks_total"  # labels: namespace, model, from, to
METRIC_MODEL_STATUS: Final = "modelops_model_status"  # labels: namespace, model, condition
METRIC_ANALYSIS_ERROR_RATE: Final = "modelops_analysis_error_rate"  # namespace, model, version
METRIC_DECISIONS: Final = "modelops_decisions_total"  # namespace, model, result

# --- Local control plane (modelops.devcluster, tests/cluster) --------------------------------
ENV_K8S_BIN: Final = "MODELOPS_K8S_BIN"  # a bin dir with etcd, kube-apiserver, ... (skips the build)
ENV_CACHE: Final = "MODELOPS_CACHE"  # default ~/.cache/modelops (tools/build-k8s.sh reads it too)
ENV_USE_EXISTING_CLUSTER: Final = "MODELOPS_USE_EXISTING_CLUSTER"  # "1": tests use $KUBECONFIG
ENV_KIND_NODE_IMAGE: Final = "MODELOPS_KIND_NODE_IMAGE"  # kind node image (default: made here)
ENV_LOCAL_CLUSTER: Final = "MODELOPS_LOCAL_CLUSTER"  # auto | kind | node | both (tests/e2e)
ENV_ALLOW_DESTRUCTIVE: Final = "MODELOPS_ALLOW_DESTRUCTIVE"  # "1": allow any kube context
DEV_CONTEXT: Final = "modelops-dev"  # kubeconfig context the harness writes
DEV_CLUSTER_DIRNAME: Final = "devcluster"  # default work dir: $MODELOPS_CACHE/devcluster

# --- Added by the serving side (append only) ----------------------------------------------------
ENV_GRACEFUL_TIMEOUT: Final = "MODELOPS_GRACEFUL_TIMEOUT_SECONDS"  # SIGTERM: in-flight requests finish

# --- Added by the image side (append only) ------------------------------------------------------
IMAGE_UID: Final = 65532  # the images' non-root user and group id (Dockerfile `USER`)

# --- Added by the node side (append only) -------------------------------------------------------
DEFAULT_OPERATOR_IMAGE: Final = "modelops/operator:0.1.0"  # the tag deploy/operator.yaml runs
DEV_SAMPLES_NAMESPACE: Final = "demo"  # where `devcluster up --deploy` applies deploy/samples

# --- Added by the artifacts side (append only) --------------------------------------------------
ENV_S3_ENDPOINT: Final = "MODELOPS_S3_ENDPOINT"  # empty = AWS S3 in the region
ENV_S3_REGION: Final = "MODELOPS_S3_REGION"
ENV_S3_ADDRESSING: Final = "MODELOPS_S3_ADDRESSING"  # "path" | "virtual"
ENV_S3_CA_BUNDLE: Final = "MODELOPS_S3_CA_BUNDLE"  # PEM file path inside the pod
ENV_MLFLOW_TRACKING_URI: Final = "MLFLOW_TRACKING_URI"  # MLflow's own names
ENV_MLFLOW_TOKEN: Final = "MLFLOW_TRACKING_TOKEN"
ENV_MLFLOW_CA_BUNDLE: Final = "MLFLOW_TRACKING_SERVER_CERT_PATH"
# the AWS SDKs' names, filled from the credentials Secret by secretKeyRef
ENV_AWS_ACCESS_KEY_ID: Final = "AWS_ACCESS_KEY_ID"
ENV_AWS_SECRET_ACCESS_KEY: Final = "AWS_SECRET_ACCESS_KEY"
ENV_AWS_SESSION_TOKEN: Final = "AWS_SESSION_TOKEN"
CA_BUNDLE_MOUNT: Final = "/etc/modelops/ca"
ANNOTATION_MLFLOW_ALIAS_ROLLOUT: Final = "modelops.io/mlflow-alias-rollout"  # "auto" | "manual"
# --- Added by the quality side (append only) ----------------------------------------------------
ENV_FEEDBACK_KEY: Final = "MODELOPS_FEEDBACK_KEY"  # HMAC key, from the Model's Secret
ENV_FEEDBACK_HORIZON: Final = "MODELOPS_FEEDBACK_HORIZON_SECONDS"  # token lifetime, default 86400
ENV_FEEDBACK_SEEN_CAPACITY: Final = "MODELOPS_FEEDBACK_SEEN_CAPACITY"  # scored tokens kept per pod
FEEDBACK_SECRET_KEY: Final = "key"  # the data key in the Secret <model>-feedback
METRIC_FEEDBACK_ROWS: Final = "modelops_feedback_rows_total"  # model, version
METRIC_FEEDBACK_CORRECT: Final = "modelops_feedback_correct_total"  # model, version
METRIC_FEEDBACK_CLASS: Final = "modelops_feedback_class_total"  # model, version, class, outcome
METRIC_FEEDBACK_ABS_ERROR: Final = "modelops_feedback_abs_error_total"  # model, version
METRIC_FEEDBACK_SQUARED_ERROR: Final = "modelops_feedback_squared_error_total"  # model, version
METRIC_FEEDBACK_REQUESTS: Final = "modelops_feedback_requests_total"  # model, version, code
# --- Added by the plumbing side (append only) ---------------------------------------------------
LABEL_ROLE: Final = "modelops.io/role"  # on serving pods, set by the operator: absent/serving/standby
ROLE_SERVING: Final = "serving"
ROLE_STANDBY: Final = "standby"  # warm but out of service: answer `Connection: close`
ENV_POD_LABELS_FILE: Final = "MODELOPS_POD_LABELS_FILE"  # the pod's labels (downward API file)
ENV_MAX_CONNECTION_AGE: Final = "MODELOPS_MAX_CONNECTION_AGE_SECONDS"  # 0 = keep connections
PODINFO_MOUNT: Final = "/etc/modelops/podinfo"  # downward API volume; its `labels` file
FIELD_MANAGER: Final = "modelops"  # server-side apply field manager of every child
REPORTING_COMPONENT: Final = "modelops-operator"  # Events' reportingComponent / source
# --- Added by the shadow side (append only) ------------------------------------------------------
# The serving revision's pods copy a share of their successful predict requests to a candidate
# (serving/shadow.py). The switch is pod annotations, which the kubelet writes to a downward-API
# file re-read once a second, so the operator turns shadow on/off without restarting the pods.
ENV_POD_ANNOTATIONS_FILE: Final = "MODELOPS_POD_ANNOTATIONS_FILE"  # the pod's annotations file
ANNOTATION_SHADOW_URL: Final = "modelops.io/shadow-url"  # http://<candidate Service>:<port>; absent = off
ANNOTATION_SHADOW_VERSION: Final = "modelops.io/shadow-version"  # the candidate's version (label)
ANNOTATION_SHADOW_PERCENT: Final = "modelops.io/shadow-percent"  # 0-100, default 100
ANNOTATION_SHADOW_TOLERANCE: Final = "modelops.io/shadow-tolerance"  # regressors, default 0.01
ANNOTATION_CANARY_PERCENT: Final = "modelops.io/canary-percent"  # 0-100 of answers made by the candidate, default 0
ANNOTATION_CANARY_HASH_HEADER: Final = "modelops.io/canary-hash-header"  # same header value, same side
CANARY_HASH_HEADER_PATTERN: Final = r"^[A-Za-z0-9-]{1,64}$"  # spec.rollout.canary.hashHeader, the annotation
ENV_SHADOW_QUEUE: Final = "MODELOPS_SHADOW_QUEUE"  # copies waiting per worker, default 32
ENV_SHADOW_SENDERS: Final = "MODELOPS_SHADOW_SENDERS"  # copies in flight per worker, default 2
ENV_SHADOW_TIMEOUT: Final = "MODELOPS_SHADOW_TIMEOUT_SECONDS"  # total deadline per copy, default 1
HEADER_SHADOW: Final = "Modelops-Shadow"  # on a copy: the sender's version; never mirrored again
HEADER_VERSION: Final = "Modelops-Version"  # pins a predict request to a version; names who answered
SHADOW_OUTCOMES: Final = ("mirrored", "shed", "error", "unreachable", "timeout")
METRIC_SHADOW_REQUESTS: Final = "modelops_shadow_requests_total"  # model, version, candidate, outcome
METRIC_SHADOW_ROWS: Final = "modelops_shadow_rows_total"  # model, version, candidate: rows compared
METRIC_SHADOW_DISAGREEMENTS: Final = "modelops_shadow_disagreements_total"  # same labels
METRIC_SHADOW_LATENCY: Final = "modelops_shadow_duration_seconds"  # same labels: candidate answers
METRIC_SHADOW_PERCENT: Final = "modelops_shadow_percent"  # same labels: the share in effect
METRIC_SHADOW_INVALID: Final = "modelops_shadow_config_invalid"  # model, version: 1 = annotations refused
METRIC_FORWARDED_REQUESTS: Final = "modelops_forwarded_requests_total"  # model, version, target, route, code
