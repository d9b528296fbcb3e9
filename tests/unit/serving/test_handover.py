"""The role file: the downward API labels format and the once-a-second re-read (pure-ish)."""

from __future__ import annotations

from modelops import contract
from modelops.serving.handover import RoleFile, parse_labels


def test_parse_labels_reads_the_downward_api_format():
    text = 'a="1"\nmodelops.io/role="standby"\nquoted="say \\"hi\\""\nbroken\n'
    assert parse_labels(text) == {"a": "1", contract.LABEL_ROLE: "standby", "quoted": 'say "hi"'}


def test_role_file_is_re_read_at_most_once_a_second(tmp_path):
    path, now = tmp_path / "labels", [0.0]
    path.write_text(f'{contract.LABEL_ROLE}="standby"\n')
    role = RoleFile(str(path), clock=lambda: now[0])
    assert role.standby()
    path.write_text(f'{contract.LABEL_ROLE}="serving"\n')
    now[0] = 0.5
    assert role.standby()
    now[0] = 1.0
    assert not role.standby()


def test_no_file_or_no_label_means_serving(tmp_path):
    assert not RoleFile(None).standby()
    assert not RoleFile(str(tmp_path / "missing")).standby()
    (tmp_path / "labels").write_text('x="y"\n')
    assert not RoleFile(str(tmp_path / "labels")).standby()
