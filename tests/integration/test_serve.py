"""tunekit serve as a real subprocess on a loopback port, spoken to over real HTTP (http.client):
health, info (no server path in it), single and batch predictions equal to `tunekit predict`,
the error statuses (400, 404, 413, 422, all JSON), and a clean stop on SIGINT. Then create_app
in-process with TestClient. test_serve_safety.py covers timeouts, the queue, 500s and fuzzing."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from test_predict import trained_run
from tunekit.cli.app import app

TUNEKIT = str(Path(sys.executable).with_name("tunekit"))
LIMITS = {"max_body_bytes": 4096, "max_batch": 4, "max_chars": 300, "timeout": 45, "max_queue": 8}
TEXTS = ["great fun excellent the movie", "awful boring the plot was dull", "the film was really good and fun"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path):
        self.proc, self.port, self.log = proc, port, log

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = 60):
        """(status, parsed JSON body). `body`: an object (sent as JSON), bytes, or an iterator
        of byte chunks (sent chunked, without Content-Length)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            headers = {"Content-Type": "application/json", **(headers or {})}
            chunked = body is not None and not isinstance(body, (bytes, dict, list, str))
            if isinstance(body, (dict, list, str)):
                body = json.dumps(body).encode()
            conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
            response = conn.getresponse()
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
        finally:
            conn.close()

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tiny_model_dir) -> Path:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a busy 2-core machine (see test_predict.one_thread)
    yield trained_run("classification", tmp_path_factory, tiny_model_dir)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def server(classifier, tmp_path_factory):
    port = free_port()
    log = tmp_path_factory.mktemp("serve") / "stderr.txt"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    args = [TUNEKIT, "serve", str(classifier), "--port", str(port), "--log-level", "warning"]
    for key, value in LIMITS.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env)
    srv = Server(proc, port, log)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, f"serve exited with {proc.returncode}:\n{srv.stderr()[-3000:]}"
        try:
            if srv.request("GET", "/health", timeout=5)[0] == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, f"serve did not answer /health in time:\n{srv.stderr()[-3000:]}"
        time.sleep(0.3)
    yield srv
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=30)


def predict_cli(run: Path, text: str) -> dict:
    result = CliRunner().invoke(app, ["predict", str(run), text, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["prediction"]


def same(a: dict, b: dict) -> None:
    assert a["label"] == b["label"]
    assert a["scores"] == pytest.approx(b["scores"], abs=1e-5)


def test_health_and_info(server, classifier, tiny_model_dir):
    assert f"http://127.0.0.1:{server.port}" in server.stderr()  # startup prints the URL
    status, body = server.request("GET", "/health")
    assert status == 200 and body == {"status": "ok", "model_loaded": True, "task": "classification"}
    status, info = server.request("GET", "/info")
    assert status == 200
    assert info["task"] == "classification" and info["labels"] == ["negative", "positive"]
    assert info["input_fields"] == ["text"] and info["output_fields"] == ["label", "scores"]
    assert info["limits"]["max_batch"] == 4 and info["limits"]["max_body_bytes"] == 4096
    assert info["limits"]["timeout"] == 45 and info["limits"]["max_queue"] == 8
    assert info["max_length"] == 32 and info["adapter"] is False
    # the model by name, never by path: not in /info, not in the OpenAPI document behind /docs
    assert info["model"] == "classification" and info["base_model"] == tiny_model_dir.name
    status, doc = server.request("GET", "/openapi.json")
    assert status == 200 and doc["info"]["title"] == "tunekit: classification"
    shown = json.dumps(info) + json.dumps(doc)
    assert str(classifier.parent) not in shown and str(tiny_model_dir) not in shown


def test_single_and_batch_equal_predict(server, classifier):
    expected = [predict_cli(classifier, t) for t in TEXTS]
    for text, want in zip(TEXTS, expected):
        status, body = server.request("POST", "/predict", {"text": text})
        assert status == 200, body
        same(body["prediction"], want)
    status, body = server.request("POST", "/predict", {"inputs": [{"text": t} for t in TEXTS]})
    assert status == 200, body
    assert len(body["predictions"]) == 3
    for got, want in zip(body["predictions"], expected):  # input order kept
        same(got, want)


def test_wrong_and_missing_fields_are_422(server):
    status, body = server.request("POST", "/predict", {"txt": "typo"})
    assert status == 422
    problems = {(tuple(d["loc"]), d["type"]) for d in body["detail"]}
    assert (("body", "text"), "missing") in problems and (("body", "txt"), "extra_forbidden") in problems
    status, body = server.request("POST", "/predict", {"inputs": [{"text": "fine"}, {"text": 3}]})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "inputs", 1, "text"]
    status, body = server.request("POST", "/predict", {"text": "   "})
    assert status == 422 and "empty" in body["detail"][0]["msg"]


def test_limits(server):
    status, body = server.request("POST", "/predict", {"inputs": [{"text": "fun"}] * 5})
    assert status == 422 and body["detail"][0]["loc"] == ["body", "inputs"]  # max_batch 4
    status, body = server.request("POST", "/predict", {"text": "fun " * 100})
    assert status == 422 and "300" in body["detail"][0]["msg"]  # max_chars 300
    big = json.dumps({"text": "x" * 5000}).encode()
    status, body = server.request("POST", "/predict", big)
    assert status == 413 and "4096" in body["detail"]  # refused on Content-Length
    status, body = server.request("POST", "/predict", iter([big[:3000], big[3000:]]))
    assert status == 413  # chunked, no Content-Length: refused while reading


def test_bodies_that_are_not_objects_are_400(server):
    for body in (["a", "list"], "a string", b"{not json", b""):
        status, answer = server.request("POST", "/predict", body)
        assert status == 400, (body, answer)
        assert "JSON" in answer["detail"]
    status, answer = server.request("GET", "/nowhere")  # unknown paths and methods: JSON too
    assert status == 404 and "/predict" in answer["hint"]
    status, answer = server.request("PUT", "/predict", {"text": "fun"})
    assert status == 405 and answer["detail"] == "Method Not Allowed"
    status, _ = server.request("GET", "/health")  # still serving after all of that
    assert status == 200


def test_bad_timeout_is_refused_before_loading(classifier):
    for value in ("0", "-1", "nan"):
        result = CliRunner().invoke(app, ["serve", str(classifier), "--timeout", value, "--port", str(free_port())])
        assert result.exit_code == 2 and "--timeout must be a positive number" in result.output, result.output


def test_sigint_stops_cleanly(server):
    server.proc.send_signal(signal.SIGINT)
    code = server.proc.wait(timeout=60)
    assert code in (0, 130), server.stderr()[-3000:]
    assert "Traceback" not in server.stderr()


def test_create_app_in_process(classifier):
    """The same app without a socket (starlette's TestClient); and /health answers while a
    prediction holds the model."""
    import threading

    from fastapi.testclient import TestClient

    from tunekit.model_info import find_model
    from tunekit.serving.app import create_app
    from tunekit.serving.predictor import Limits, load_predictor

    predictor = load_predictor(find_model(classifier))
    with TestClient(create_app(predictor, Limits(max_batch=2))) as client:  # one event loop for all requests
        assert client.get("/health").json()["model_loaded"] is True
        doc = client.get("/openapi.json").json()  # /docs: the request body's schema and its parts
        assert {"ClassificationInput", "BatchInput"} <= set(doc["components"]["schemas"])
        one = client.post("/predict", json={"text": TEXTS[0]})
        assert one.status_code == 200
        same(one.json()["prediction"], predictor.predict([{"text": TEXTS[0]}])[0])
        assert client.post("/predict", json={"inputs": [{"text": "a"}] * 3}).status_code == 422
        with predictor._lock:  # a prediction in progress holds the model
            worker = threading.Thread(target=lambda: client.post("/predict", json={"text": "fun"}))
            worker.start()
            time.sleep(0.2)
            started = time.monotonic()
            assert client.get("/health").status_code == 200  # the event loop is not blocked
            assert time.monotonic() - started < 5
        worker.join(timeout=30)


@pytest.fixture(scope="module")
def runs(classifier, tmp_path_factory, tiny_model_dir) -> dict:
    """The qa and causal_lm runs of test_predict (trained once per session)."""
    return {kind: trained_run(kind, tmp_path_factory, tiny_model_dir) for kind in ("qa", "causal_lm")}


def test_qa_and_generation_in_process(runs):
    from fastapi.testclient import TestClient

    from tunekit.model_info import find_model
    from tunekit.serving.app import create_app
    from tunekit.serving.predictor import Limits, load_predictor

    qa = load_predictor(find_model(runs["qa"]))
    context = "the movie was good plot 123 and this story"
    with TestClient(create_app(qa)) as client:
        answer = client.post("/predict", json={"question": "which plot number", "context": context}).json()
        assert answer["prediction"] == qa.predict([{"question": "which plot number", "context": context}])[0]
        assert set(answer["prediction"]) == {"answer", "score", "start", "end"}
        # a question that leaves no room for the passage in a 24-token window: the task says why
        refused = client.post("/predict", json={"question": "which plot " * 12, "context": context})
        assert refused.status_code == 422 and "max_length" in refused.json()["detail"]["message"]
        assert client.post("/predict", json={"question": "which plot number"}).status_code == 422

    lm = load_predictor(find_model(runs["causal_lm"]))
    with TestClient(create_app(lm, Limits(max_new_tokens=4))) as client:
        info = client.get("/info").json()
        assert info["style"] == "instruction" and info["limits"]["max_new_tokens"] == 4
        assert info["generation"]["max_new_tokens"] == 4  # the run says 6; a request gets at most the cap
        short = client.post("/predict", json={"prompt": "say the color red", "max_new_tokens": 2})
        assert short.status_code == 200 and set(short.json()["prediction"]) == {"generated_text", "capped"}
        assert len(short.json()["prediction"]["generated_text"].split()) <= 2
        too_long = client.post("/predict", json={"prompt": "say the color red", "max_new_tokens": 5})
        assert too_long.status_code == 422 and too_long.json()["detail"][0]["loc"] == ["body", "max_new_tokens"]
        batch = client.post("/predict", json={"inputs": [{"prompt": "say the color red"}, {"prompt": "say blue"}]})
        assert batch.status_code == 200 and len(batch.json()["predictions"]) == 2
