"""gunicorn options derived from the settings."""

from __future__ import annotations

from modelops.serving.server import DrainingThreadWorker, child_exit, gunicorn_options
from modelops.serving.settings import ServingSettings


def test_options_follow_the_settings():
    options = gunicorn_options(ServingSettings(model_name="iris", host="127.0.0.1", port=9000,
                                               workers=3, threads=8, graceful_timeout_seconds=2.5))
    assert options["bind"] == ["127.0.0.1:9000"]
    assert (options["workers"], options["threads"]) == (3, 8)
    assert options["worker_class"] is DrainingThreadWorker
    assert options["reuse_port"] is True and options["preload_app"] is False
    assert options["graceful_timeout"] == 3  # whole seconds, rounded up
    assert options["control_socket_disable"] is True  # nothing may change the server at run time
    assert options["child_exit"] is child_exit
    assert options["proc_name"] == "modelops-serving-iris"


def test_ipv6_hosts_are_bracketed():
    assert gunicorn_options(ServingSettings(host="::", port=8080))["bind"] == ["[::]:8080"]
