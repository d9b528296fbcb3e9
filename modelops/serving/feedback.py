"""Model quality from feedback: remember recent predictions, score ground truth against them.

Each successful prediction is remembered by its request id in an sqlite file in the pod's shared
directory, so feedback can arrive at any gunicorn worker. Only the last `window` predictions and
the last `window` feedback entries are kept (a sliding window). Accuracy (classifiers) or RMSE
(regressors) over the feedback window is computed when /metrics is scraped and exported as
contract.METRIC_QUALITY{model, version, metric}. score() is pure; FeedbackStore does file I/O.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily

from modelops import contract as c
from modelops.serving.errors import InvalidInput, NotFound

log = logging.getLogger(__name__)

FILENAME = "feedback.sqlite3"
_MAX_BATCH = 1000
_FLUSH_TIMEOUT_SECONDS = 2.0
# The writer lets predictions gather this long before a transaction: one commit per request
# costs ~150 us of the worker's CPU, one per batch a few us per request (flush() cuts it short).
WRITE_INTERVAL_SECONDS = 0.02
_OTHER_WORKERS_GRACE_SECONDS = 0.05  # > WRITE_INTERVAL_SECONDS: another worker's batch is stored
_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS predictions (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT UNIQUE NOT NULL, labels TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS feedback (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " id TEXT UNIQUE NOT NULL, n REAL NOT NULL, correct REAL NOT NULL, sqerr REAL NOT NULL)",
)


def quality_metric(kind: str) -> str:
    """RMSE for regressors, accuracy for everything else (classifiers, clusterers)."""
    return "rmse" if kind == "regressor" else "accuracy"


def score(predicted: list, truth: object, metric: str) -> tuple[float, float, float]:
    """(values, correct, squared error) of `truth` against one request's predictions."""
    if not isinstance(truth, list):
        raise InvalidInput("'truth' must be a list with one value per predicted row")
    if len(truth) != len(predicted):
        raise InvalidInput(f"'truth' has {len(truth)} values but that prediction had {len(predicted)} rows")
    if metric == "accuracy":
        return float(len(truth)), float(sum(p == t for p, t in zip(predicted, truth))), 0.0
    pairs = [(p, t) for row_p, row_t in zip(predicted, truth) for p, t in _values(row_p, row_t)]
    if any(type(t) not in (int, float) or not math.isfinite(t) for _, t in pairs):
        raise InvalidInput("'truth' values must be finite numbers for a regressor")
    return float(len(pairs)), 0.0, float(sum((p - t) ** 2 for p, t in pairs))


def _values(predicted: object, truth: object) -> list[tuple]:
    if isinstance(predicted, list):
        if not isinstance(truth, list) or len(truth) != len(predicted):
            raise InvalidInput("each 'truth' row must have as many values as the predicted row")
        return list(zip(predicted, truth))
    return [(predicted, truth)]


class FeedbackStore:
    """The shared sliding window of predictions and feedback for one model version.

    remember() only queues: a writer thread stores queued predictions in batches, one
    transaction each, at most every `write_interval` seconds, so the request path pays
    microseconds instead of an sqlite commit. record() first has this worker's queue written
    at once, and waits once briefly for other workers', so a prediction is found as soon as its
    response has been sent.
    """

    def __init__(self, path: Path, *, window: int,
                 write_interval: float = WRITE_INTERVAL_SECONDS) -> None:
        self.path = path
        self.window = window
        self._write_interval = write_interval
        self._local = threading.local()
        self._pending: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()
        self._progress = threading.Condition()
        self._write_now = threading.Event()
        self._queued = 0
        self._written = 0
        self.transactions = 0
        """Batches written so far (for tests and logs)."""
        for statement in _SCHEMA:
            self._connection().execute(statement)
        threading.Thread(target=self._write_forever, name="modelops-feedback", daemon=True).start()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=OFF")
            self._local.connection = connection
        return connection

    def remember(self, request_id: str, labels: list) -> None:
        """Queue one request's predicted labels (or values) under its id."""
        with self._progress:
            self._queued += 1
        self._pending.put((request_id, json.dumps(labels, default=str)))

    def flush(self, timeout: float = _FLUSH_TIMEOUT_SECONDS) -> bool:
        """Store everything this worker queued so far, now; False if that took over `timeout`."""
        with self._progress:
            target = self._queued

            def stored() -> bool:
                if self._written >= target:
                    return True
                self._write_now.set()  # again after each batch: the target may span two
                return False

            return self._progress.wait_for(stored, timeout)

    def _write_forever(self) -> None:
        db = self._connection()
        backlog = False
        while True:
            rows = [self._pending.get()]
            if not backlog:
                self._write_now.wait(self._write_interval)
            self._write_now.clear()
            while len(rows) < _MAX_BATCH:
                try:
                    rows.append(self._pending.get_nowait())
                except queue.Empty:
                    break
            try:
                self._write(db, rows)
            except sqlite3.Error as error:  # feedback is best effort; predictions already answered
                log.warning("Could not store %d predictions for feedback: %s", len(rows), error)
            backlog = len(rows) == _MAX_BATCH
            with self._progress:
                self._written += len(rows)
                self.transactions += 1
                self._progress.notify_all()

    def _write(self, db: sqlite3.Connection, rows: list[tuple[str, str]]) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany("INSERT OR REPLACE INTO predictions (id, labels) VALUES (?, ?)", rows)
            self._trim(db, "predictions")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _trim(self, db: sqlite3.Connection, table: str) -> None:
        (last,) = db.execute(f"SELECT MAX(seq) FROM {table}").fetchone()
        if last is not None and last > self.window:
            db.execute(f"DELETE FROM {table} WHERE seq <= ?", (last - self.window,))

    def record(self, request_id: str, truth: object, metric: str) -> dict:
        """Score `truth` (accuracy or rmse) against the remembered prediction; NotFound if unknown."""
        self.flush()
        predicted = self._lookup(request_id)
        if predicted is None:
            time.sleep(_OTHER_WORKERS_GRACE_SECONDS)  # another worker's writer may be mid-batch
            predicted = self._lookup(request_id)
        if predicted is None:
            raise NotFound(f"no recent prediction with id {request_id!r} "
                           f"(the last {self.window} are kept)")
        n, correct, sqerr = score(predicted, truth, metric)
        db = self._connection()
        db.execute("INSERT OR REPLACE INTO feedback (id, n, correct, sqerr) VALUES (?, ?, ?, ?)",
                   (request_id, n, correct, sqerr))
        self._trim(db, "feedback")
        return {"id": request_id, "metric": metric, "value": _value(metric, n, correct, sqerr),
                "rows": int(n)}

    def _lookup(self, request_id: str) -> list | None:
        row = self._connection().execute("SELECT labels FROM predictions WHERE id = ?",
                                          (request_id,)).fetchone()
        return json.loads(row[0]) if row is not None else None

    def quality(self, metric: str) -> float | None:
        """Accuracy or RMSE over the last `window` feedback entries; None without feedback."""
        n, correct, sqerr = self._connection().execute(
            "SELECT SUM(n), SUM(correct), SUM(sqerr) FROM "
            "(SELECT n, correct, sqerr FROM feedback ORDER BY seq DESC LIMIT ?)", (self.window,)
        ).fetchone()
        return _value(metric, n, correct, sqerr) if n else None


def _value(metric: str, n: float, correct: float, sqerr: float) -> float:
    return correct / n if metric == "accuracy" else math.sqrt(sqerr / n)


class QualityCollector:
    """Exports the store's quality as METRIC_QUALITY when /metrics is scraped."""

    def __init__(self, store: FeedbackStore, *, model: str, version: str,
                 metric: Callable[[], str | None]) -> None:
        self._store = store
        self._model, self._version = model, version
        self._metric = metric

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(c.METRIC_QUALITY, "Model quality over the feedback window",
                                   labels=["model", "version", "metric"])
        metric = self._metric()
        value = self._store.quality(metric) if metric else None
        if value is not None:
            family.add_metric([self._model, self._version, metric], value)
        yield family
