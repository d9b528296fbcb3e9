"""The role file: the downward API labels format and the once-a-second re-read (pure-ish)."""

from __future__ import annotations

from modelops import contract
from modelops.serving.handover import AGE_JITTER, ConnectionAge, RoleFile, parse_labels


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


class Connection:
    """Stands for gunicorn's TConn: any object that takes an attribute."""


def test_a_connection_expires_at_its_drawn_age_counted_from_its_first_request():
    now, draws = [100.0], iter([0.0, 1.0])
    age = ConnectionAge(5.0, clock=lambda: now[0], draw=lambda: next(draws))
    first, second = Connection(), Connection()
    assert not age.expired(first)  # clock starts: deadline 105
    now[0] = 100.2
    assert not age.expired(second)  # deadline 100.2 + 5 * (1 - AGE_JITTER) = 104.7
    now[0] = 100.2 + 5.0 * (1 - AGE_JITTER)
    assert age.expired(second) and not age.expired(first)
    now[0] = 105.0
    assert age.expired(first) and age.expired(first)  # stays expired until it closes


def test_age_zero_keeps_connections_forever():
    now = [0.0]
    age = ConnectionAge(0.0, clock=lambda: now[0])
    connection = Connection()
    for now[0] in (0.0, 1e6):
        assert not age.expired(connection)
