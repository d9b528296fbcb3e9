"""The shadow's children (pure): the candidate's Service, the annotations the serving pods copy
by (read back with the serving image's own parser), the merge patches that put them on and take
them off, and which Services of ended shadows go."""

from __future__ import annotations

from modelops import contract as c
from modelops.operator.builders import SERVICE_PORT, build_service
from modelops.operator.children import owned_by
from modelops.operator.rollout_pass import ShadowWiring
from modelops.operator.shadow_children import (annotation_changes, build_shadow_service,
                                               shadow_annotations, stale_services)
from modelops.serving.shadow_diff import parse_target

WIRING = ShadowWiring(source="r1", candidate="r2", version="2", percent=12.5, tolerance=0.01)
WANTED = shadow_annotations(WIRING, model="fraud", namespace="team", domain="cluster.local")


def pod(name, revision, shadow=None, owner=None, deleting=False):
    return {"name": name, "revision": revision, "deleting": deleting,
            "owner": owner or f"fraud-{revision}-5d9f", "shadow": shadow or {}}


def test_the_candidate_service_selects_only_the_candidates_pods():
    service = build_shadow_service("fraud", revision="r2", version="2")
    assert service["metadata"]["name"] == "fraud-r2"
    assert service["spec"]["selector"] == {c.LABEL_MODEL: "fraud", c.LABEL_REVISION: "r2"}
    assert service["metadata"]["labels"][c.LABEL_REVISION] == "r2"
    assert service["spec"]["ports"] == build_service("fraud", revision="r2",
                                                     version="2")["spec"]["ports"]


def test_the_serving_pods_parse_what_the_operator_writes():
    target = parse_target(WANTED)
    assert target.url == f"http://fraud-r2.team.svc.cluster.local:{SERVICE_PORT}"
    assert (target.version, target.percent, target.tolerance) == ("2", 12.5, 0.01)


def test_a_canary_step_is_read_back_as_a_share_to_answer_with_no_copies():
    wiring = ShadowWiring(source="r1", candidate="r2", version="2", percent=0.0, tolerance=0.01,
                          canary_percent=10.0, canary_hash_header="X-User")
    wanted = shadow_annotations(wiring, model="fraud", namespace="team", domain="cluster.local")
    target = parse_target(wanted)
    assert (target.percent, target.canary_percent, target.canary_hash_header) == (0, 10, "X-User")
    assert c.ANNOTATION_CANARY_PERCENT not in WANTED  # a plain shadow answers no one
    # the step's end (back to a plain shadow, or none) takes the canary keys off
    pods = [pod("s1", "r1", shadow=wanted)]
    assert annotation_changes(pods, None, None, owned_by("fraud")) == [
        ("s1", dict.fromkeys(wanted))]
    assert dict(annotation_changes(pods, WANTED, "r1", owned_by("fraud")))["s1"] == {
        c.ANNOTATION_SHADOW_PERCENT: "12.5", c.ANNOTATION_CANARY_PERCENT: None,
        c.ANNOTATION_CANARY_HASH_HEADER: None}


def test_the_source_pods_get_the_annotations_and_others_lose_theirs():
    pods = [pod("s1", "r1"), pod("s2", "r1", shadow=WANTED), pod("c1", "r2", shadow=WANTED),
            pod("old", "r0", shadow={c.ANNOTATION_SHADOW_URL: "http://x:80"})]
    changes = dict(annotation_changes(pods, WANTED, "r1", owned_by("fraud")))
    assert changes["s1"] == WANTED
    assert "s2" not in changes  # already right: nothing sent
    assert changes["c1"] == dict.fromkeys(WANTED)  # None removes each key
    assert changes["old"] == {c.ANNOTATION_SHADOW_URL: None}


def test_a_changed_share_patches_only_that_key():
    pods = [pod("s1", "r1", shadow=WANTED)]
    wanted = {**WANTED, c.ANNOTATION_SHADOW_PERCENT: "50"}
    assert annotation_changes(pods, wanted, "r1", owned_by("fraud")) == [
        ("s1", {c.ANNOTATION_SHADOW_PERCENT: "50"})]


def test_no_shadow_removes_every_annotation_and_leaves_clean_pods_alone():
    pods = [pod("s1", "r1", shadow=WANTED), pod("s2", "r1")]
    assert annotation_changes(pods, None, None, owned_by("fraud")) == [
        ("s1", dict.fromkeys(WANTED))]


def test_pods_we_do_not_own_or_that_are_going_are_never_written():
    pods = [pod("foreign", "r1", owner="impostor-77"), pod("going", "r1", deleting=True)]
    assert annotation_changes(pods, WANTED, "r1", owned_by("fraud")) == []


def test_stale_services_are_our_candidate_services_except_the_one_kept():
    ours = {"controller": {"kind": "Model", "name": "fraud", "uid": "u"}}
    services = [{"name": "fraud", "uid": "s0", **ours}, {"name": "fraud-r2", "uid": "s2", **ours},
                {"name": "fraud-r3", "uid": "s3", **ours},
                {"name": "fraud-x", "uid": "s4", "controller": {"uid": "other"}},
                {"name": "fraud-r4", "uid": "s5", "deleting": True, **ours}]
    assert stale_services(services, model="fraud", uid="u", keep="fraud-r2") == [("fraud-r3", "s3")]
    assert stale_services(services, model="fraud", uid="u", keep=None) == [
        ("fraud-r2", "s2"), ("fraud-r3", "s3")]
