"""The operator image: same installed package, its own command, importable in a locked-down run.

Running the operator for real needs an API server (tests/cluster and tests/e2e do that); here
the image must carry kopf and the handlers, and import them as uid 65532 on a read-only root
filesystem with no network.
"""

from __future__ import annotations

import json

import pytest
import sklearn

from modelops import contract
from tests.image.docker_cli import Images, docker

pytestmark = pytest.mark.docker

OPERATOR_COMMAND = ["python", "-m", "modelops.operator"]


def test_operator_image_config(images: Images) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", images.operator))
    assert config["User"] == f"{contract.IMAGE_UID}:{contract.IMAGE_UID}"
    assert config.get("Entrypoint") is None
    assert config["Cmd"] == OPERATOR_COMMAND


def test_both_images_carry_the_same_package_and_the_hosts_scikit_learn(images: Images) -> None:
    probe = ("import importlib.metadata as m, kopf, modelops.operator, modelops.serving;"
             "print(m.version('modelops'), m.version('kopf'), m.version('scikit-learn'))")
    versions = {
        image: docker("run", "--rm", "--read-only", "--tmpfs", contract.SCRATCH_MOUNT,
                      "--network", "none", image, "python", "-c", probe).split()
        for image in (images.operator, images.serving)
    }
    assert versions[images.operator] == versions[images.serving]
    assert versions[images.serving][2] == sklearn.__version__, "host-trained models would not load"
