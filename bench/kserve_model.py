"""KServe's sklearnserver, re-made small: the KServe side of the serving benchmark.

    ~/.cache/modelops/bench-kserve/bin/python bench/kserve_model.py --model_name iris \
        --model_dir DIR --http_port P --workers 2 --enable_grpc false

KServe publishes its sklearn runtime (python/sklearnserver in kserve/kserve) only as an image,
not on PyPI, so this is its equivalent on the `kserve` 0.21 package: `load` joblib-loads the one
.joblib/.pkl/.pickle file in --model_dir and sets ready; `predict` turns a v2 InferRequest (its
first input, `as_numpy`) or a v1 `{"instances": ...}` dict into an array with KServe's own
`get_predict_input`, calls the estimator's predict (the synchronous call in the event loop, as
sklearnserver does) and answers with `get_predict_response` (one output `output-0`). Every
other flag is kserve.ModelServer's own argparse. One change to KServe: it binds its HTTP socket
to 0.0.0.0 with no option, so uvicorn's Config is given host 127.0.0.1 here (gRPC, which binds
[::], is meant to be off). Runs in the KServe venv only; it does not import modelops.
"""

from __future__ import annotations

import argparse
import functools
from pathlib import Path

import joblib
import kserve
import uvicorn
from kserve import InferRequest, InferResponse
from kserve.errors import InferenceError, ModelMissingError
from kserve.utils.utils import get_predict_input, get_predict_response

MODEL_EXTENSIONS = (".joblib", ".pkl", ".pickle")
LOOPBACK = "127.0.0.1"


class SKLearnModel(kserve.Model):
    """sklearnserver's SKLearnModel: one joblib artifact, predict on the request's array."""

    def __init__(self, name: str, model_dir: str):
        super().__init__(name)
        self.model_dir = Path(model_dir)
        self._model = None

    def load(self) -> bool:
        files = [p for p in self.model_dir.iterdir()
                 if p.is_file() and p.name.endswith(MODEL_EXTENSIONS)]
        if not files:
            raise ModelMissingError(str(self.model_dir))
        if len(files) > 1:
            raise RuntimeError(f"more than one model file in {self.model_dir}: {files}")
        self._model = joblib.load(files[0])
        self.ready = True
        return self.ready

    def predict(self, payload: dict | InferRequest,
                headers: dict[str, str] | None = None) -> dict | InferResponse:
        try:
            result = self._model.predict(get_predict_input(payload))
            return get_predict_response(payload, result, self.name)
        except Exception as error:  # sklearnserver's contract: any model error is an InferenceError
            raise InferenceError(str(error)) from error


def _bind_loopback() -> None:
    """KServe's RESTServer builds uvicorn.Config(host="0.0.0.0"); make that host loopback."""
    original = uvicorn.Config

    @functools.wraps(original)
    def loopback_config(*args, **kwargs):
        kwargs["host"] = LOOPBACK
        return original(*args, **kwargs)

    uvicorn.Config = loopback_config


def main() -> None:
    parser = argparse.ArgumentParser(parents=[kserve.model_server.parser])
    parser.add_argument("--model_dir", required=True, help="directory holding the artifact")
    args, _ = parser.parse_known_args()
    _bind_loopback()
    model = SKLearnModel(args.model_name, args.model_dir)
    model.load()
    kserve.ModelServer().start([model])


if __name__ == "__main__":
    main()
