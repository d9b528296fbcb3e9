"""Runs INSIDE the e2e client pod (stdlib only; its text is passed to `python -c`).

    predict URL BODY-JSON
        One POST; prints {"status": int, "body": <JSON or text>}.
    load URL CONCURRENCY MAX-SECONDS BAD-SHARE
        KServe v1 predict requests for the iris shape from CONCURRENCY threads until stdin closes
        or MAX-SECONDS pass (bounded either way). A BAD-SHARE fraction of rows has a negative
        first feature. Prints {"codes": {code: count}, "errors": [[seconds, code, detail]...],
        "requests": n, "seconds": elapsed}; code 0 means no HTTP answer (connection failed).
    keepalive HOST PATH CONCURRENCY MAX-SECONDS
        Open Inference Protocol v2 infer requests from CONCURRENCY threads, each over ONE
        persistent HTTP/1.1 connection (as requests.Session, Go and Java clients do), reopened
        only when the server closes it. Prints {"answers": [[epoch-seconds, model_version]...],
        "codes": {...}, "errors": [...], "connections": n opened, "answered": [[epoch-seconds,
        Modelops-Version header, code]...] for every HTTP answer, errors included}. With
        BAD-SHARE (optional), that fraction of rows has a negative first feature.
    feedback BASE-URL MODEL COUNT CONCURRENCY KEEP
        COUNT iris predictions (v2 infer), each followed by its true label sent back with the
        answer's feedback token, each request on a new connection (so through the Service they
        land on any pod); the first KEEP (token, truth) pairs are printed instead of sent. Prints
        {"infer": {code: n}, "feedback": {code: n}, "errors": [...], "kept": [[token, truth]...]}.
    score BASE-URL MODEL
        Sends the [[token, truth]...] read from stdin as feedback, one request each; prints
        {"feedback": {code: n}, "errors": [...]}.
    routable URL MAX-SECONDS
        GETs URL every 0.1 s until an HTTP answer of any status comes back (a just-created
        Service refuses connections until kube-proxy has programmed its endpoints) or MAX-SECONDS
        pass. Prints {"status": code or 0, "seconds": elapsed, "refused": failed attempts}.
    connect HOST PORT TIMEOUT
        One TCP connect. Prints {"error": null, "ECONNREFUSED", "EHOSTUNREACH", ... or
        "timeout", "seconds": elapsed}.
"""

import errno
import http.client
import json
import random
import socket
import sys
import threading
import time
import urllib.error
import urllib.request

GOOD_ROW = [5.1, 3.5, 1.4, 0.2]
BAD_ROW = [-1.0, 3.5, 1.4, 0.2]
LABELLED_ROWS = [(GOOD_ROW, 0), ([6.7, 3.0, 5.2, 2.3], 2), ([5.9, 3.0, 4.2, 1.5], 1)]
MAX_ERRORS_KEPT = 5000  # enough to time a whole failing period


def post(url, body, timeout=10.0):
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def predict(url, body_json):
    status, text = post(url, json.loads(body_json))
    try:
        body = json.loads(text)
    except ValueError:
        body = text
    print(json.dumps({"status": status, "body": body}))


def load(url, concurrency, max_seconds, bad_share):
    stop = threading.Event()
    lock = threading.Lock()
    codes, errors = {}, []
    started = time.monotonic()

    def worker(seed):
        rng = random.Random(seed)
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            row = BAD_ROW if rng.random() < bad_share else GOOD_ROW
            try:
                code, detail = post(url, {"instances": [row]}, timeout=5.0)
            except Exception as failure:  # noqa: BLE001 - any transport failure counts as 0
                code, detail = 0, repr(failure)
            with lock:
                codes[code] = codes.get(code, 0) + 1
                if code != 200 and len(errors) < MAX_ERRORS_KEPT:
                    errors.append([round(time.monotonic() - started, 3), code, detail[:200]])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    waiter = threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True)
    waiter.start()
    for thread in threads:
        thread.join(max_seconds + 10)
    stop.set()
    print(json.dumps({"codes": codes, "errors": errors, "requests": sum(codes.values()),
                      "seconds": round(time.monotonic() - started, 3)}))


def v2_body(row):
    return {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": row}]}


def keepalive(host, path, concurrency, max_seconds, bad_share=0.0):
    lock = threading.Lock()
    answers, answered, codes, errors, opened = [], [], {}, [], [0]
    started = time.monotonic()
    good, bad = json.dumps(v2_body(GOOD_ROW)), json.dumps(v2_body(BAD_ROW))
    stop = threading.Event()

    def worker(seed):
        rng = random.Random(seed)
        connection = http.client.HTTPConnection(host, timeout=5.0)
        while not stop.is_set() and time.monotonic() - started < max_seconds:
            if connection.sock is None:
                with lock:
                    opened[0] += 1
            body = bad if rng.random() < bad_share else good
            try:
                connection.request("POST", path, body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                code, text = response.status, response.read().decode()
                version = response.getheader("Modelops-Version", "")
                if response.will_close:
                    connection.close()  # the server said Connection: close
            except Exception as failure:  # noqa: BLE001 - any transport failure counts as 0
                connection.close()
                code, text, version = 0, repr(failure), ""
            with lock:
                codes[code] = codes.get(code, 0) + 1
                if code:
                    answered.append([round(time.time(), 3), version, code])
                if code == 200:
                    answers.append([round(time.time(), 3), json.loads(text)["model_version"]])
                elif len(errors) < MAX_ERRORS_KEPT:
                    errors.append([round(time.time(), 3), code, text[:200]])

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    for thread in threads:
        thread.join(max_seconds + 10)
    stop.set()
    print(json.dumps({"answers": answers, "codes": codes, "errors": errors,
                      "connections": opened[0], "answered": answered}))


def feedback(base, model, count, concurrency, keep):
    lock = threading.Lock()
    infer_codes, feedback_codes, errors, kept = {}, {}, [], []
    todo = iter(range(count))

    def note(codes, code, detail):
        with lock:
            codes[code] = codes.get(code, 0) + 1
            if code != 200 and len(errors) < MAX_ERRORS_KEPT:
                errors.append([round(time.time(), 3), code, detail[:200]])

    def worker():
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            row, truth = LABELLED_ROWS[i % len(LABELLED_ROWS)]
            code, text = _safe_post(f"{base}/v2/models/{model}/infer", v2_body(row))
            note(infer_codes, code, text)
            if code != 200:
                continue
            token = json.loads(text)["parameters"]["feedback_tokens"][0]
            if i < keep:
                with lock:
                    kept.append([token, truth])
                continue
            code, text = _safe_post(f"{base}/v2/models/{model}/feedback",
                                    {"token": token, "truth": truth})
            note(feedback_codes, code, text)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    print(json.dumps({"infer": infer_codes, "feedback": feedback_codes, "errors": errors,
                      "kept": kept}))


def score(base, model):
    codes, errors = {}, []
    for token, truth in json.loads(sys.stdin.read()):
        code, text = _safe_post(f"{base}/v2/models/{model}/feedback", {"token": token, "truth": truth})
        codes[code] = codes.get(code, 0) + 1
        if code != 200:
            errors.append([round(time.time(), 3), code, text[:200]])
    print(json.dumps({"feedback": codes, "errors": errors}))


def routable(url, max_seconds):
    started, refused, status = time.monotonic(), 0, 0
    while time.monotonic() - started < max_seconds:
        try:
            with urllib.request.urlopen(url, timeout=5.0) as response:
                status = response.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError:
            refused += 1
            time.sleep(0.1)
            continue
        break
    print(json.dumps({"status": status, "seconds": round(time.monotonic() - started, 3),
                      "refused": refused}))


def connect(host, port, timeout):
    started, error = time.monotonic(), None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.timeout:
        error = "timeout"
    except OSError as failure:
        error = errno.errorcode.get(failure.errno, repr(failure))
    print(json.dumps({"error": error, "seconds": round(time.monotonic() - started, 3)}))


def _safe_post(url, body):
    try:
        return post(url, body, timeout=10.0)
    except Exception as failure:  # noqa: BLE001 - any transport failure counts as 0
        return 0, repr(failure)


if __name__ == "__main__":
    if sys.argv[1] == "predict":
        predict(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "load":
        load(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]))
    elif sys.argv[1] == "keepalive":
        keepalive(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]),
                  float(sys.argv[6]) if len(sys.argv) > 6 else 0.0)
    elif sys.argv[1] == "feedback":
        feedback(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
    elif sys.argv[1] == "score":
        score(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "routable":
        routable(sys.argv[2], float(sys.argv[3]))
    elif sys.argv[1] == "connect":
        connect(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
    else:
        sys.exit(f"unknown mode {sys.argv[1]!r}: predict | load | keepalive | feedback | score"
                 " | routable | connect")
