"""Model quality from feedback: signed per-row tokens, scored into Prometheus counters.

Each predicted row of a classifier or single-output regressor gets a feedback token:
`base64url(payload).base64url(mac)`, where the payload holds the version, kind, the row's
prediction, a random 128-bit nonce and an expiry (default 24 h), and the MAC is HMAC-SHA256
(truncated to 128 bits) over the model name and the payload with the Model's key
(MODELOPS_FEEDBACK_KEY, from the Secret the operator creates). Any pod holding the key can score
a token without shared state: the prediction travels inside it. The client's own request id
plays no part, so nobody can score a prediction whose token they did not receive.

Replay: a pod keeps the nonces it has scored in a bounded sqlite seen-set in its emptyDir,
shared by its workers and kept across container restarts until the token expires. So a token
is scored at most once per pod; with R pods, at most R times (plus once per pod replacement)
within its horizon. Scoring adds to counters (rows, correct, per-class TP/FP/FN, absolute and
squared error) labelled with the token's version; the operator turns window deltas into
accuracy, precision, recall, RMSE and MAE. `make_token`/`open_token`/`score_row` are pure.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from modelops import contract as c
from modelops.serving.errors import InvalidInput, ServingError

SEEN_FILENAME = "feedback-seen.sqlite3"
MAC_BYTES = 16
MAX_TOKEN_CHARS = 1024
MAX_FEEDBACK_ROWS = 1000
KINDS = ("classifier", "regressor")
M_ROWS = c.METRIC_FEEDBACK_ROWS
M_CORRECT = c.METRIC_FEEDBACK_CORRECT
M_CLASS = c.METRIC_FEEDBACK_CLASS  # labels: model, version, class, outcome (tp|fp|fn)
M_ABS = c.METRIC_FEEDBACK_ABS_ERROR
M_SQ = c.METRIC_FEEDBACK_SQUARED_ERROR
M_CALLS = c.METRIC_FEEDBACK_REQUESTS  # labels: model, version, code


class Forbidden(ServingError):
    status = 403


class Replayed(ServingError):
    status = 409


class Full(ServingError):
    status = 429


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, model: str, payload: bytes) -> bytes:
    return hmac.new(key, model.encode() + b"\0" + payload, hashlib.sha256).digest()[:MAC_BYTES]


def make_token(key: bytes, *, model: str, version: str, kind: str, prediction: object,
               expires: int, nonce: bytes | None = None) -> str:
    """A signed token for one predicted row."""
    body = {"v": version, "k": kind[0], "p": prediction, "e": int(expires),
            "n": _b64(nonce or os.urandom(16))}
    payload = json.dumps(body, separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_mac(key, model, payload))}"


@dataclass(frozen=True)
class Claim:
    version: str
    kind: str
    prediction: object
    expires: int
    nonce: str


def open_token(key: bytes, model: str, token: object, now: float) -> Claim:
    """Verify a token; Forbidden if forged, for another model or expired."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise InvalidInput("'token' must be a feedback token from a prediction's response")
    payload_text, mac_text = token.split(".")
    try:
        payload, mac = _unb64(payload_text), _unb64(mac_text)
    except ValueError:
        raise InvalidInput("'token' is not base64url") from None
    if not hmac.compare_digest(mac, _mac(key, model, payload)):
        raise Forbidden("feedback token is not valid for this model (forged or altered)")
    body = json.loads(payload)
    if body["e"] < now:
        raise Forbidden("feedback token has expired")
    kind = "classifier" if body["k"] == "c" else "regressor"
    return Claim(str(body["v"]), kind, body["p"], int(body["e"]), str(body["n"]))


@dataclass(frozen=True)
class Score:
    """What one scored row adds to the counters."""

    correct: bool = False
    predicted: str = ""
    truth: str = ""
    abs_error: float = 0.0
    squared_error: float = 0.0


def score_row(claim: Claim, truth: object, classes: tuple[str, ...] | None) -> Score:
    """Score one true value against a claim; InvalidInput when the truth cannot be scored.

    Classifier truths must be one of the serving model's classes (bounding label values).
    """
    if claim.kind == "regressor":
        if type(truth) not in (int, float) or not math.isfinite(truth):
            raise InvalidInput("'truth' must be a finite number for a regressor")
        error = float(claim.prediction) - float(truth)
        return Score(abs_error=abs(error), squared_error=error * error)
    if isinstance(truth, (dict, list)) or truth is None:
        raise InvalidInput("'truth' must be one class label")
    predicted, actual = _class_name(claim.prediction), _class_name(truth)
    if classes is not None and actual not in classes:
        raise InvalidInput(f"'truth' {truth!r} is not one of the model's classes")
    return Score(correct=predicted == actual, predicted=predicted, truth=actual)


def _class_name(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value)


class SeenSet:
    """Nonces this pod has scored, shared by its workers, kept until their tokens expire."""

    def __init__(self, path: Path, *, capacity: int) -> None:
        self.path, self.capacity = path, capacity
        self._local = threading.local()
        self._db().execute("CREATE TABLE IF NOT EXISTS seen (nonce TEXT PRIMARY KEY, "
                           "expires INTEGER NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            self._local.db = db
        return db

    def claim(self, claims: list[Claim], now: float) -> None:
        """Mark every nonce seen, all or none; Replayed if one was seen, Full if at capacity."""
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM seen WHERE expires < ?", (int(now),))
            (count,) = db.execute("SELECT COUNT(*) FROM seen").fetchone()
            if count + len(claims) > self.capacity:
                raise Full(f"this pod already holds {count} scored tokens (limit "
                           f"{self.capacity}); retry later")
            db.executemany("INSERT INTO seen (nonce, expires) VALUES (?, ?)",
                           [(c.nonce, c.expires) for c in claims])
        except sqlite3.IntegrityError:
            db.execute("ROLLBACK")
            raise Replayed("a feedback token in this request was already scored") from None
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")


class QualityCounters:
    """The feedback counters (multiprocess-safe Prometheus counters)."""

    def __init__(self, model: str, registry: CollectorRegistry) -> None:
        self.model = model
        labels = ["model", "version"]
        self.rows = Counter(M_ROWS, "Scored feedback rows", labels, registry=registry)
        self.correct = Counter(M_CORRECT, "Scored classifier rows predicted right", labels,
                               registry=registry)
        self.classes = Counter(M_CLASS, "Per-class true positives, false positives, false negatives",
                               [*labels, "class", "outcome"], registry=registry)
        self.abs_error = Counter(M_ABS, "Sum of absolute errors of scored regressor rows", labels,
                                 registry=registry)
        self.squared_error = Counter(M_SQ, "Sum of squared errors of scored regressor rows",
                                     labels, registry=registry)
        self.calls = Counter(M_CALLS, "Feedback requests by HTTP status", [*labels, "code"],
                             registry=registry)

    def add(self, claim: Claim, score: Score) -> None:
        version = claim.version
        self.rows.labels(self.model, version).inc()
        if claim.kind == "regressor":
            self.abs_error.labels(self.model, version).inc(score.abs_error)
            self.squared_error.labels(self.model, version).inc(score.squared_error)
            return
        if score.correct:
            self.correct.labels(self.model, version).inc()
            self.classes.labels(self.model, version, score.truth, "tp").inc()
        else:
            self.classes.labels(self.model, version, score.predicted, "fp").inc()
            self.classes.labels(self.model, version, score.truth, "fn").inc()


class Feedback:
    """Issues tokens for predictions and scores feedback into the counters."""

    def __init__(self, *, key: bytes, model: str, version: str, seen: SeenSet,
                 counters: QualityCounters, horizon_seconds: float = 86400.0,
                 max_rows: int = MAX_FEEDBACK_ROWS) -> None:
        self.key, self.model, self.version = key, model, version
        self.seen, self.counters = seen, counters
        self.horizon_seconds, self.max_rows = horizon_seconds, max_rows

    def tokens(self, kind: str, labels: list) -> list[str] | None:
        """One token per row, or None (not a classifier/regressor, multi-output, too many rows)."""
        if kind not in KINDS or len(labels) > self.max_rows or \
                any(isinstance(v, (list, dict)) for v in labels):
            return None
        expires = int(time.time() + self.horizon_seconds)
        return [make_token(self.key, model=self.model, version=self.version, kind=kind,
                           prediction=v, expires=expires) for v in labels]

    def record(self, body: dict, classes: tuple[str, ...] | None) -> dict:
        """Score `{"feedback": [{"token", "truth"}, ...]}` (or one {"token", "truth"}): all or none."""
        items = body.get("feedback", [body] if "token" in body else None)
        if not isinstance(items, list) or not items or len(items) > self.max_rows:
            raise InvalidInput(f"'feedback' must be a list of 1 to {self.max_rows} "
                               "{\"token\": ..., \"truth\": ...} objects")
        now = time.time()
        scored = []
        for index, item in enumerate(items):
            if not isinstance(item, dict) or "truth" not in item:
                raise InvalidInput(f"feedback[{index}] needs 'token' and 'truth'")
            claim = open_token(self.key, self.model, item.get("token"), now)
            scored.append((claim, score_row(claim, item["truth"], classes)))
        nonces = [claim.nonce for claim, _ in scored]
        if len(set(nonces)) != len(nonces):
            raise Replayed("the same feedback token appears twice in this request")
        self.seen.claim([claim for claim, _ in scored], now)
        for claim, row in scored:
            self.counters.add(claim, row)
        return {"scored": len(scored)}
