"""The ownership rule, API refusals as reasons, pod role labels, the child-error overlay (pure)."""

from __future__ import annotations

import json

import pytest
from kubernetes.client.rest import ApiException

from modelops import contract
from modelops.operator.children import (Applier, ChildConflict, applied_message, check_owner,
                                        digest, pass_events, rejection, role_changes)
from modelops.operator.kube import meta_of
from modelops.operator.statuswrite import with_child_error

OWNER = {"kind": "Model", "metadata": {"name": "fraud", "uid": "u-1"}}


def live(controller=None, deleting=False):
    refs = [] if controller is None else [{"controller": True, **controller}]
    return meta_of({"metadata": {"uid": "c", "resourceVersion": "7", "ownerReferences": refs,
                                 **({"deletionTimestamp": "x"} if deleting else {})}})


def test_a_child_we_control_passes():
    check_owner("Service", "fraud", live({"kind": "Model", "name": "fraud", "uid": "u-1"}), OWNER)


@pytest.mark.parametrize(("found", "holder"), [
    (live(), "no controller"),
    (live({"kind": "ModelPipeline", "name": "fraud", "uid": "p-9"}), "ModelPipeline fraud"),
    (live({"kind": "Model", "name": "other", "uid": "u-2"}), "Model other"),
])
def test_a_foreign_object_is_a_conflict_that_names_it(found, holder):
    with pytest.raises(ChildConflict) as caught:
        check_owner("Service", "fraud", found, OWNER)
    assert not caught.value.transient
    assert str(caught.value).startswith(f"Service fraud already exists and is controlled by {holder}")


@pytest.mark.parametrize("found", [live({"kind": "Model", "name": "fraud", "uid": "old"}),
                                   live(deleting=True)])
def test_an_earlier_incarnations_child_is_a_transient_conflict(found):
    with pytest.raises(ChildConflict) as caught:
        check_owner("Service", "fraud", found, OWNER)
    assert caught.value.transient


def api_error(status, message):
    error = ApiException(status=status, reason="Reason")
    error.body = json.dumps({"kind": "Status", "message": message})
    return error


def test_admission_and_validation_refusals_carry_the_api_servers_message():
    refused = rejection("Deployment", "fraud-abc", api_error(422, 'ValidatingAdmissionPolicy '
                                                                '"x" denied request: no'))
    assert str(refused) == ('the API server refused Deployment fraud-abc: '
                            'ValidatingAdmissionPolicy "x" denied request: no')


@pytest.mark.parametrize("status", [409, 429, 500, 503])
def test_retryable_errors_are_not_refusals(status):
    assert rejection("Deployment", "d", api_error(status, "later")) is None


@pytest.mark.parametrize("written, message", [
    ([], None),
    ([("created", "Service", "iris")], "Created Service iris"),
    ([("created", "Service", "iris"), ("created", "Deployment", "iris-a1")],
     "Created Service iris, Deployment iris-a1"),
    ([("updated", "Service", "iris"), ("created", "Deployment", "iris-b2"),
      ("updated", "Deployment", "iris-a1")],
     "Updated Service iris, Deployment iris-a1; created Deployment iris-b2"),
])
def test_one_event_message_lists_a_passs_writes_by_result(written, message):
    assert applied_message(written) == message


ROLLING_OUT = ("Normal", "RollingOut", "Deploying first version 1")
CREATED = [("created", "Service", "iris"), ("created", "Deployment", "iris-a1")]


@pytest.mark.parametrize("planned, written, events", [
    ([], [], []),
    ([], CREATED, [("Normal", "ChildrenApplied", "Created Service iris, Deployment iris-a1")]),
    ([ROLLING_OUT], [], [ROLLING_OUT]),
    ([ROLLING_OUT], CREATED, [("Normal", "RollingOut", "Deploying first version 1. "
                                                      "Created Service iris, Deployment iris-a1")]),
    ([("Warning", "RolledBack", "Rolled back to 1."), ("Normal", "AliasResolved", "x")],
     [("updated", "Service", "iris")],
     [("Warning", "RolledBack", "Rolled back to 1."),
      ("Normal", "AliasResolved", "x. Updated Service iris")]),
    ([("Warning", "RolledBack", "Rolled back to 1.")], [("updated", "Service", "iris")],
     [("Warning", "RolledBack", "Rolled back to 1. Updated Service iris")]),
])
def test_a_pass_posts_its_plan_events_with_the_children_written_in_the_last(
        planned, written, events):
    assert pass_events(planned, written) == events


def test_digest_ignores_key_order_only():
    assert digest({"a": 1, "b": [1, 2]}) == digest({"b": [1, 2], "a": 1})
    assert digest({"a": 1}) != digest({"a": "1"})


def pod(name, revision, role="", owner=None, deleting=False):
    return {"name": name, "revision": revision, "role": role, "deleting": deleting,
            "owner": owner if owner is not None else f"m-{revision}-hash"}


def owns(p):
    return p["owner"].startswith(f"m-{p['revision']}-")


def test_roles_only_out_of_service_pods_get_standby_and_returning_ones_serving():
    pods = [pod("new-1", "r2"), pod("old-1", "r1"), pod("old-2", "r1", contract.ROLE_STANDBY),
            pod("back-1", "r2", contract.ROLE_STANDBY), pod("foreign", "r1", owner="x"),
            pod("gone", "r1", deleting=True)]
    before, after = role_changes(pods, "r2", owns)
    assert before == [("back-1", contract.ROLE_SERVING)]
    assert after == [("old-1", contract.ROLE_STANDBY)]


def test_the_candidate_in_shadow_keeps_its_connections_and_leaves_standby():
    pods = [pod("cand-1", "r3"), pod("cand-2", "r3", contract.ROLE_STANDBY), pod("old-1", "r0")]
    before, after = role_changes(pods, "r1", owns, shadow_candidate="r3")
    assert before == [("cand-2", contract.ROLE_SERVING)]
    assert after == [("old-1", contract.ROLE_STANDBY)]


def test_roles_settled_write_nothing():
    pods = [pod("a", "r1"), pod("b", "r0", contract.ROLE_STANDBY)]
    assert role_changes(pods, "r1", owns) == ([], [])


def test_a_child_error_sets_ready_false_and_stalled_and_repeating_it_changes_nothing():
    planned = {"conditions": [
        {"type": "Ready", "status": "False", "reason": "RollingOut", "message": "m",
         "lastTransitionTime": "t0", "observedGeneration": 1},
        {"type": "Reconciling", "status": "True", "reason": "RollingOut", "message": "m",
         "lastTransitionTime": "t0", "observedGeneration": 1},
        {"type": "Stalled", "status": "False", "reason": "RollingOut", "message": "m",
         "lastTransitionTime": "t0", "observedGeneration": 1}]}
    error = ("ChildRejected", "the API server refused Deployment d: no")
    first = with_child_error(dict(planned), error, planned["conditions"], now="t1", generation=1)
    by_type = {c["type"]: c for c in first["conditions"]}
    assert set(by_type) == {"Ready", "Stalled"}
    assert (by_type["Stalled"]["status"], by_type["Stalled"]["reason"]) == ("True", "ChildRejected")
    assert by_type["Ready"]["lastTransitionTime"] == "t0"  # still False
    again = with_child_error(dict(planned), error, first["conditions"], now="t2", generation=1)
    assert again["conditions"] == first["conditions"]


class FakeKube:
    """kube.read_meta / kube.apply against one dict of live objects; `during_apply` runs while
    the request is in flight (as a watch event would, on the event loop)."""

    def __init__(self):
        self.objects, self.sent, self.during_apply = {}, 0, None
        self.version = 0

    def read_meta(self, kind, name, namespace):
        return self.objects.get(name)

    def apply(self, obj):
        self.sent += 1
        self.version += 1
        stored = meta_of({"metadata": {"uid": "d-1", "resourceVersion": str(self.version),
                                       "generation": self.version,
                                       "ownerReferences": obj["metadata"]["ownerReferences"]}})
        self.objects[obj["metadata"]["name"]] = stored
        if self.during_apply:
            self.during_apply()
        return stored


@pytest.fixture()
def fake_kube(monkeypatch):
    fake = FakeKube()
    monkeypatch.setattr("modelops.operator.children.kube.read_meta", fake.read_meta)
    monkeypatch.setattr("modelops.operator.children.kube.apply", fake.apply)
    return fake


def child(replicas=2):
    return {"kind": "Deployment", "spec": {"replicas": replicas},
            "metadata": {"name": "fraud-abc", "namespace": "ns", "ownerReferences": [
                {"controller": True, "kind": "Model", "name": "fraud", "uid": "u-1"}]}}


def test_an_idle_pass_sends_nothing_and_our_own_create_is_trusted_until_the_index_has_it(fake_kube):
    applier = Applier()
    assert applier.apply(child(), OWNER, None) == "created"
    assert applier.apply(child(), OWNER, None) is None  # the index has not seen it yet
    assert applier.apply(child(), OWNER, fake_kube.objects["fraud-abc"]) is None
    assert fake_kube.sent == 1


def test_a_status_write_on_our_deployment_sends_nothing_a_spec_edit_or_a_new_object_does(fake_kube):
    applier = Applier()
    applier.apply(child(), OWNER, None)
    ours = fake_kube.objects["fraud-abc"]
    status_moved = {**ours, "resourceVersion": "90"}  # the controller wrote its status
    assert applier.apply(child(), OWNER, status_moved) is None and fake_kube.sent == 1
    spec_edited = {**ours, "resourceVersion": "91", "generation": ours["generation"] + 1}
    applier.apply(child(), OWNER, spec_edited)
    assert fake_kube.sent == 2  # a `kubectl edit` of the spec is undone
    after_edit = fake_kube.objects["fraud-abc"]
    recreated = {**after_edit, "uid": "d-2", "resourceVersion": "95"}  # same generation
    applier.apply(child(), OWNER, recreated)
    assert fake_kube.sent == 3


def test_a_deleted_child_is_applied_again_on_the_next_pass(fake_kube):
    applier = Applier()
    applier.apply(child(), OWNER, None)
    del fake_kube.objects["fraud-abc"]
    applier.forget("ns", {"fraud-abc"})
    assert applier.apply(child(), OWNER, None) == "created"
    assert fake_kube.sent == 2


def test_a_delete_seen_while_an_apply_is_in_flight_is_not_hidden_by_that_apply(fake_kube):
    """The apply reached the old object, the user deleted it, the watch's DELETED (forget)
    came before the response: that response must not be trusted as the live object."""
    applier = Applier()
    applier.apply(child(), OWNER, None)
    live = fake_kube.objects["fraud-abc"]

    def deleted_meanwhile():
        del fake_kube.objects["fraud-abc"]
        applier.forget("ns", {"fraud-abc"})
    fake_kube.during_apply = deleted_meanwhile
    applier.apply(child(replicas=3), OWNER, live)
    fake_kube.during_apply = None
    assert applier.apply(child(replicas=3), OWNER, None) == "created"
    assert "fraud-abc" in fake_kube.objects
