"""The `modelops` command: pure views and checks, then main() against a fake CustomObjectsApi,
and connection failures through the real kubernetes client on a loopback port."""

import io
import json
import socket
from datetime import datetime, timedelta, timezone

import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from modelops import contract
from modelops.cli import main, retry_token
from modelops.cli_kube import connect
from modelops.cli_views import (
    CliError,
    age,
    check_name,
    check_namespace,
    check_rollback_target,
    history_table,
    quality_cell,
    human_age,
    models_table,
    percent,
    rollback_line,
)

NOW = datetime(2026, 8, 20, 12, 0, 0, tzinfo=timezone.utc)


def make_model(name="iris", namespace="demo", *, created=NOW - timedelta(hours=3), **status):
    return {
        "apiVersion": contract.API_GROUP_VERSION, "kind": contract.MODEL_KIND,
        "metadata": {"name": name, "namespace": namespace, "annotations": {},
                     "creationTimestamp": created.strftime("%Y-%m-%dT%H:%M:%SZ")},
        "spec": {"version": status.pop("spec_version", "4")},
        "status": status,
    }


ROLLED_BACK = make_model(
    desiredVersion="4", servingVersion="3", lastGoodVersion="3",
    conditions=[{"type": "Ready", "status": "False", "reason": "RolledBack"}],
    analysis={"errorRate": 0.072, "requests": 1834, "result": "Failed"},
    history=[
        {"version": "2", "sha256": "a" * 64, "startedAt": "2026-08-18T09:00:00Z",
         "endedAt": "2026-08-19T09:00:00Z", "outcome": "Promoted", "reason": "BakeWindowPassed"},
        {"version": "3", "sha256": "b" * 64, "startedAt": "2026-08-19T09:00:00Z",
         "outcome": "Serving"},
        {"version": "4", "sha256": "c" * 64, "startedAt": "2026-08-20T10:00:00Z",
         "endedAt": "2026-08-20T10:04:11Z", "outcome": "RolledBack",
         "reason": "ErrorRateAboveThreshold", "errorRate": 0.072, "requests": 1834,
         "quality": {"scoredRows": 412, "accuracy": 0.8125}},
        {"version": "5", "sha256": "d" * 64, "startedAt": "2026-08-20T11:00:00Z",
         "endedAt": "2026-08-20T11:01:00Z", "outcome": "Failed", "reason": "ChecksumMismatch"},
    ],
    rollback={"fromVersion": "4", "toVersion": "3", "time": "2026-08-20T10:04:11Z",
              "reason": "ErrorRateAboveThreshold", "errorRate": 0.072, "threshold": 0.05,
              "window": "2m", "requests": 1834},
)


# --- pure views -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(-5, "0s"), (0, "0s"), (45, "45s"), (119, "119s"), (120, "2m"), (303, "5m3s"),
     (600, "10m"), (179 * 60, "179m"), (3 * 3600, "3h"), (5 * 3600 + 120, "5h2m"),
     (8 * 3600, "8h"), (47 * 3600, "47h"), (2 * 86400, "2d"), (3 * 86400 + 4 * 3600, "3d4h"),
     (8 * 86400, "8d"), (400 * 86400, "400d"), (731 * 86400, "2y1d"), (9 * 365 * 86400, "9y")],
)
def test_human_age_matches_kubectl(seconds, text):
    assert human_age(seconds) == text


@pytest.mark.parametrize(("stamp", "text"), [("2026-08-20T11:59:15Z", "45s"),
                                             ("2026-08-17T12:00:00+00:00", "3d"),
                                             (None, "-"), ("yesterday", "-")])
def test_age(stamp, text):
    assert age(stamp, NOW) == text


@pytest.mark.parametrize(("value", "text"), [(0.072, "7.20%"), (0, "0.00%"), (1, "100.00%"),
                                             (None, "-"), ("0.1", "-"), (True, "-")])
def test_percent(value, text):
    assert percent(value) == text


def test_models_table():
    fresh = make_model("wine", "alpha", created=NOW - timedelta(seconds=30))  # no status yet
    table = models_table([ROLLED_BACK, fresh], NOW)
    assert table.splitlines() == [
        "NAMESPACE   NAME   READY   SERVING   DESIRED   ERROR-RATE   DECISION   AGE",
        "alpha       wine   -       -         4         -            -          30s",
        "demo        iris   False   3         4         7.20%        Failed     3h",
    ]


def test_history_table_and_rollback_line():
    lines = history_table(ROLLED_BACK).splitlines()
    assert lines[0].split() == ["VERSION", "SHA256", "STARTED", "ENDED", "OUTCOME", "REASON",
                                "ERROR-RATE", "QUALITY"]
    assert lines[3].split() == ["4", "cccccccccccc", "2026-08-20T10:00:00Z",
                                "2026-08-20T10:04:11Z", "RolledBack", "ErrorRateAboveThreshold",
                                "7.20%", "acc=81.25%/412"]
    assert lines[2].split() == ["3", "bbbbbbbbbbbb", "2026-08-19T09:00:00Z", "-", "Serving", "-",
                                "-", "-"]
    assert rollback_line(ROLLED_BACK) == (
        "Rollback: 4 -> 3 at 2026-08-20T10:04:11Z, reason ErrorRateAboveThreshold: "
        "error rate 7.20% > 5.00% over 2m (1834 requests)")
    assert rollback_line(make_model()) == "Rollback: none"


@pytest.mark.parametrize(("quality", "cell"), [
    (None, "-"), ({}, "-"), ({"scoredRows": 0, "accuracy": 0.5}, "-"),
    ({"scoredRows": 96, "rmse": 0.41234, "mae": 0.3}, "rmse=0.4123/96"),
    ({"scoredRows": 7, "accuracy": 1.0, "precision": 1.0}, "acc=100.00%/7"),
])
def test_quality_cell(quality, cell):
    assert quality_cell(quality) == cell


@pytest.mark.parametrize("version", ["2", "3", "4"])
def test_rollback_target_in_history_is_accepted(version):
    check_rollback_target(ROLLED_BACK, version)


@pytest.mark.parametrize(
    ("model", "version", "message"),
    [
        (ROLLED_BACK, "9", "version '9': it is not in status.history (known versions: 2, 3, 4, 5)"),
        (ROLLED_BACK, "5", "version '5': it never served"),
        (make_model(), "1", "it is not in status.history (it has no history yet)"),
        (ROLLED_BACK, " ", "--to needs a version"),
    ],
)
def test_rollback_target_refused(model, version, message):
    with pytest.raises(CliError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_rollback_target(model, version)


@pytest.mark.parametrize("name", ["Iris", "-iris", "iris_1", "a" * 254, ""])
def test_check_name_refuses(name):
    with pytest.raises(CliError, match="invalid model name"):
        check_name(name)


@pytest.mark.parametrize("namespace", ["Demo", "a.b", "a" * 64, ""])
def test_check_namespace_refuses(namespace):
    with pytest.raises(CliError, match="invalid namespace"):
        check_namespace(namespace)


def test_retry_tokens_are_fresh():
    tokens = {retry_token(NOW) for _ in range(20)}
    assert len(tokens) == 20 and all(t.startswith("20260820T120000Z-") for t in tokens)


# --- main() with a fake API -------------------------------------------------------------------


def not_found(name):
    body = {"kind": "Status", "status": "Failure", "reason": "NotFound", "code": 404,
            "message": f'models.modelops.io "{name}" not found',
            "details": {"name": name, "group": contract.API_GROUP, "kind": "models"}}
    return ApiException(status=404, reason="Not Found", body=json.dumps(body))


class FakeCustomObjects:
    """The four CustomObjectsApi methods the command uses, over an in-memory store."""

    def __init__(self, *models, fail=None):
        self.models = {(m["metadata"]["namespace"], m["metadata"]["name"]): m for m in models}
        self.patches, self.fail = [], fail

    def _check(self, group, version, plural):
        assert (group, version, plural) == (contract.API_GROUP, contract.API_VERSION,
                                            contract.MODEL_PLURAL)
        if self.fail:
            raise self.fail

    def list_cluster_custom_object(self, group, version, plural):
        self._check(group, version, plural)
        return {"items": list(self.models.values())}

    def list_namespaced_custom_object(self, group, version, namespace, plural):
        self._check(group, version, plural)
        return {"items": [m for (ns, _), m in self.models.items() if ns == namespace]}

    def get_namespaced_custom_object(self, group, version, namespace, plural, name):
        self._check(group, version, plural)
        if (namespace, name) not in self.models:
            raise not_found(name)
        return self.models[(namespace, name)]

    def patch_namespaced_custom_object(self, group, version, namespace, plural, name, body):
        self.get_namespaced_custom_object(group, version, namespace, plural, name)
        self.patches.append((namespace, name, body))
        return self.models[(namespace, name)]


def run(*argv, api=None, default_namespace="demo"):
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), api=api, default_namespace=default_namespace, out=out, err=err, now=NOW)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def api():
    return FakeCustomObjects(ROLLED_BACK, make_model("wine", "alpha"))


def test_list_uses_the_default_namespace(api):
    code, out, err = run("list", api=api)
    assert (code, err) == (0, "")
    assert [line.split()[1] for line in out.splitlines()] == ["NAME", "iris"]


def test_list_all_namespaces(api):
    code, out, _ = run("list", "-A", api=api)
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["alpha", "demo"]


def test_list_empty_namespace(api):
    assert run("list", "-n", "empty", api=api) == (0, "No models found in namespace 'empty'.\n", "")


def test_history(api):
    code, out, err = run("history", "iris", "-n", "demo", api=api)
    lines = out.splitlines()
    assert (code, err) == (0, "")
    assert lines[0] == "Model demo/iris: desired 4, serving 3, last good 3"
    assert lines[1].startswith("VERSION") and len(lines) == 7
    assert lines[-1].startswith("Rollback: 4 -> 3")


def test_rollback_sets_only_the_annotation(api):
    code, out, err = run("rollback", "iris", "--to", "2", api=api)
    assert (code, err) == (0, "")
    (_, _, patch), = api.patches
    value = patch["metadata"]["annotations"][contract.ANNOTATION_ROLLBACK_TO]
    assert patch == {"metadata": {"annotations": {contract.ANNOTATION_ROLLBACK_TO: value}}}
    assert value.startswith("2@") and len(value) > 3, "a fresh token per request"
    annotation = f"{contract.ANNOTATION_ROLLBACK_TO}={value}"
    assert out == f"Rollback of demo/iris to version 2 requested ({annotation})\n"
    run("rollback", "iris", "--to", "2", api=api)
    assert api.patches[1][2]["metadata"]["annotations"][contract.ANNOTATION_ROLLBACK_TO] != value


def test_rollback_to_an_unknown_version_writes_nothing(api):
    code, out, err = run("rollback", "iris", "--to", "7", api=api)
    assert (code, out, api.patches) == (1, "", [])
    assert err == ("error: cannot roll back demo/iris to version '7': it is not in status.history "
                   "(known versions: 2, 3, 4, 5)\n")


def test_retry_sets_a_fresh_token(api):
    run("retry", "iris", api=api)
    run("retry", "iris", api=api)
    tokens = [body["metadata"]["annotations"][contract.ANNOTATION_RETRY]
              for _, _, body in api.patches]
    assert len(set(tokens)) == 2 and all(body["metadata"].keys() == {"annotations"}
                                         for _, _, body in api.patches)


SHADOWING = make_model("fraud", servingVersion="1", revisions=[
    {"revision": "r1", "version": "1", "phase": "Promoted"},
    {"revision": "r2", "version": "2", "phase": "Shadowing"}])


@pytest.mark.parametrize(("verb", "key"), [("promote", contract.ANNOTATION_PROMOTE),
                                           ("abort", contract.ANNOTATION_ABORT)])
def test_promote_and_abort_name_the_version_in_shadow(verb, key):
    api = FakeCustomObjects(SHADOWING)
    code, out, err = run(verb, "fraud", api=api)
    assert (code, err) == (0, "")
    assert api.patches == [("demo", "fraud", {"metadata": {"annotations": {key: "2"}}})]
    assert out == f"{verb.capitalize()} of demo/fraud version 2 requested ({key}=2)\n"


def test_promote_with_nothing_in_shadow_writes_nothing(api):
    code, out, err = run("promote", "iris", api=api)
    assert (code, out, api.patches) == (1, "", [])
    assert err.startswith("error: cannot promote demo/iris: no version is in shadow or canary")


IN_CANARY = make_model("fraud", servingVersion="1", revisions=[
    {"revision": "r1", "version": "1", "phase": "Promoted"},
    {"revision": "r2", "version": "2", "phase": "Canary",
     "canary": {"step": 1, "steps": 2, "weight": 10.0, "requests": 37, "failed": 1}}])


def test_abort_names_the_version_in_canary_and_history_shows_its_step():
    api = FakeCustomObjects(IN_CANARY)
    code, out, err = run("abort", "fraud", api=api)
    assert (code, err) == (0, "")
    assert api.patches == [("demo", "fraud", {"metadata": {"annotations": {
        contract.ANNOTATION_ABORT: "2"}}})]
    code, out, err = run("history", "fraud", api=FakeCustomObjects(IN_CANARY))
    assert code == 0 and out.splitlines()[-1] == (
        "Canary: version 2, step 1 of 2 at 10%, 37 answers, 1 failed")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "nope"], 'error: model "nope" not found in namespace "demo"\n'),
        (["retry", "nope", "-n", "alpha"], 'error: model "nope" not found in namespace "alpha"\n'),
        (["rollback", "Bad_Name", "--to", "1"], "error: invalid model name 'Bad_Name'"),
        (["list", "-n", "Not_A_Namespace"], "error: invalid namespace 'Not_A_Namespace'"),
    ],
)
def test_failures_exit_1_with_one_line(api, argv, message):
    code, out, err = run(*argv, api=api)
    assert (code, out) == (1, "")
    assert err.startswith(message) and err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "message"),
    [([], "the following arguments are required: COMMAND"),
     (["rollback", "iris"], "the following arguments are required: --to"),
     (["list", "-n", "a", "-A"], "not allowed with argument"),
     (["frobnicate"], "invalid choice: 'frobnicate'")],
)
def test_usage_errors_exit_2_with_one_line(api, argv, message):
    code, out, err = run(*argv, api=api)
    assert (code, out) == (2, "")
    assert message in err and err.count("\n") == 1 and "--help" in err


def test_help_exits_0(api, capsys):
    assert run("--help", api=api)[0] == 0
    assert "rollback" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("failure", "message"),
    [
        (ApiException(status=404, reason="Not Found", body="404 page not found"),
         "error: the API server does not know models.modelops.io: install the CRDs (crds/) first"),
        (ApiException(status=403, reason="Forbidden", body=json.dumps(
            {"message": 'models.modelops.io is forbidden: User "bob" cannot list'})),
         'error: not allowed: models.modelops.io is forbidden: User "bob" cannot list'),
        (ApiException(status=500, reason="Internal Server Error", body="oops"),
         "error: the API server answered 500: Internal Server Error"),
    ],
)
def test_api_failures_are_explained(failure, message):
    code, _, err = run("list", api=FakeCustomObjects(fail=failure))
    assert code == 1 and err == message + "\n"


# --- the real kubernetes client, loopback only ------------------------------------------------


def write_kubeconfig(path, port, namespace=None):
    context = {"cluster": "c", "user": "u", **({"namespace": namespace} if namespace else {})}
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "test",
        "clusters": [{"name": "c", "cluster": {"server": f"http://127.0.0.1:{port}"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "test", "context": context}],
    }))
    return str(path)


def test_no_cluster_gives_one_line(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    kubeconfig = write_kubeconfig(tmp_path / "config", port, namespace="team-a")
    out, err = io.StringIO(), io.StringIO()
    assert main(["--kubeconfig", kubeconfig, "history", "iris"], out=out, err=err) == 1
    assert err.getvalue() == (
        f"error: cannot reach the Kubernetes API server at 127.0.0.1:{port}: connection refused\n")


def test_missing_kubeconfig_gives_one_line(tmp_path, monkeypatch):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    out, err = io.StringIO(), io.StringIO()
    assert main(["list"], out=out, err=err) == 1
    assert err.getvalue().startswith("error: no usable Kubernetes configuration")
    assert err.getvalue().count("\n") == 1


def test_connect_reads_the_context_namespace(tmp_path):
    kubeconfig = write_kubeconfig(tmp_path / "config", 1, namespace="team-a")
    api, namespace = connect(kubeconfig)
    assert namespace == "team-a" and hasattr(api, "get_namespaced_custom_object")
    assert connect(write_kubeconfig(tmp_path / "plain", 1))[1] == "default"
