"""eval gates: parsing, min/max/max-drop decisions (lower-is-better aware), JUnit XML."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest

from tunekit.errors import TunekitError
from tunekit.pipeline.gates import Gate, check_gates, parse_gates, read_baseline, write_junit


def test_parse_gates_of_each_kind():
    gates = parse_gates(["accuracy=0.8"], ["perplexity=40"], ["f1_macro=0.02"])
    assert gates == [Gate("accuracy", "min", 0.8), Gate("perplexity", "max", 40.0), Gate("f1_macro", "max_drop", 0.02)]


@pytest.mark.parametrize("args, message", [
    ((["accuracy"], [], []), "is not METRIC=VALUE"),
    (([], ["acc=1"], []), "unknown metric 'acc'"),
    (([], [], ["bleu=-1"]), "negative"),
])
def test_bad_gates_fail_before_scoring(args, message):
    with pytest.raises(TunekitError, match=message):
        parse_gates(*args)


def test_min_max_and_drop_decisions():
    values = {"accuracy": 0.80, "perplexity": 30.0}
    baseline = {"accuracy": 0.82, "perplexity": 29.0}
    gates = [Gate("accuracy", "min", 0.8), Gate("accuracy", "max", 0.79), Gate("accuracy", "max_drop", 0.02),
             Gate("accuracy", "max_drop", 0.01), Gate("perplexity", "max_drop", 0.5), Gate("perplexity", "max_drop", 1.0)]
    passed = [r.passed for r in check_gates(gates, values, baseline)]
    # 0.80 >= 0.8; 0.80 > 0.79; drop 0.02 <= 0.02; 0.02 > 0.01; perplexity rose by 1.0 (worse): > 0.5, <= 1.0
    assert passed == [True, False, True, False, False, True]


def test_a_metric_the_evaluation_lacks_is_an_error():
    with pytest.raises(TunekitError, match="does not produce"):
        check_gates([Gate("bleu", "min", 1.0)], {"accuracy": 0.9}, None)


def test_baseline_of_another_task_is_refused(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"task": "qa", "exact_match": 50.0}))
    with pytest.raises(TunekitError, match="from task qa, not classification"):
        read_baseline(path, "classification")
    assert read_baseline(path, "qa")["exact_match"] == 50.0


def test_junit_has_one_case_per_gate_and_marks_failures(tmp_path):
    results = check_gates([Gate("accuracy", "min", 0.5), Gate("accuracy", "min", 0.95)], {"accuracy": 0.9}, None)
    write_junit(tmp_path / "gates.xml", results, "tunekit eval runs/x")
    suite = ET.parse(tmp_path / "gates.xml").getroot().find("testsuite")
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["min accuracy", "min accuracy"]
    assert cases[0].find("failure") is None and "0.9000 >= 0.95" in cases[1].find("failure").get("message")
