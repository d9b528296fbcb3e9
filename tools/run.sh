#!/usr/bin/env bash
# The main job (`make run`): a cluster (yours when KUBECONFIG is set, else kind, or a local
# control plane plus a node on this machine where kind cannot run), the operator installed with
# `kubectl apply -k deploy/`, the example models and pipeline served, one prediction and one
# pipeline call printed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
NS=${MODELOPS_SAMPLES_NAMESPACE:-demo}
say() { printf '\n== %s\n' "$*" >&2; }

if [ -n "${KUBECONFIG:-}" ] && [ "${MODELOPS_USE_EXISTING_CLUSTER:-}" = 1 ]; then
  say "Using your cluster (KUBECONFIG=$KUBECONFIG); the images must be pullable there"
  kubectl=${KUBECTL:-kubectl}
  $kubectl apply -k deploy/
  $kubectl create namespace "$NS" --dry-run=client -o yaml | $kubectl apply -f -
  $kubectl apply -k deploy/samples -n "$NS"
else
  say "Local cluster: kind (or, where kind cannot run, a control plane + node on this machine), images, operator, samples"
  line=$($PY -m modelops.devcluster up --deploy | tail -n 1)
  export "${line?}"
  kubectl="$($PY -c 'from modelops.devcluster.binaries import resolve_bin_dir; from modelops.devcluster.components import BINARIES; print(resolve_bin_dir(BINARIES))')/kubectl"
fi

say "Waiting for the Models and the pipeline to be Ready (first image pulls can take a minute)"
$kubectl wait --for=condition=Ready models --all -n "$NS" --timeout=300s
$kubectl wait --for=condition=Ready modelpipelines --all -n "$NS" --timeout=300s
$kubectl get modelops -n "$NS"

say "A prediction and a pipeline call, through the Services (kubectl port-forward on loopback)"
$PY - "$kubectl" "$NS" <<'PYEOF'
import json, socket, subprocess, sys, time, urllib.request
kubectl, ns = sys.argv[1], sys.argv[2]

def forward(service):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    proc = subprocess.Popen([kubectl, "port-forward", "-n", ns, f"svc/{service}", f"{port}:80"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close(); return proc, port
        except OSError:
            time.sleep(0.1)
    proc.terminate(); raise SystemExit(f"port-forward to {service} did not come up")

def post(port, path, body):
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"content-type": "application/json"})
    return json.load(urllib.request.urlopen(request, timeout=10))

proc, port = forward("iris")
try:
    body = {"inputs": [{"name": "x", "shape": [2, 4], "datatype": "FP64",
                        "data": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}]}
    print("iris v2 infer:", json.dumps(post(port, "/v2/models/iris/infer", body)["outputs"]))
    print("iris v1 predict:", post(port, "/v1/models/iris:predict",
                                   {"instances": [[5.1, 3.5, 1.4, 0.2]]}))
finally:
    proc.terminate()
proc, port = forward("house-price-diagnosis-router")
try:
    rows = [[0.1, -0.3, 0.5, 1.2, -0.7, 0.0, 0.4, -1.1]]
    answer = post(port, "/v2/models/house-price-diagnosis/infer",
                  {"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP64", "data": rows}],
                   "parameters": {"return_steps": True}})
    print("pipeline:", json.dumps(answer))
finally:
    proc.terminate()
PYEOF

say "Where to look next"
cat >&2 <<EOT
  export KUBECONFIG=${KUBECONFIG}
  $kubectl get modelops -n $NS                 # READY / SERVING / DESIRED / ERROR RATE / REASON
  $kubectl describe model iris -n $NS          # conditions and Events
  .venv/bin/modelops list -A                   # the CLI (also: history, rollback --to, retry)
  make cluster-down                            # stop everything this started
EOT
