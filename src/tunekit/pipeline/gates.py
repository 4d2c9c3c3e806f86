"""Quality gates for `tunekit eval` in CI: thresholds, a baseline comparison, and JUnit XML.

A gate is (metric, kind, limit): `min` fails when value < limit, `max` when value > limit, and
`max_drop` when the value fell more than limit below the baseline's (for metrics where lower is
better, e.g. perplexity, "fell" means rose). Gates are parsed and their metric names checked
before any model is loaded, so a typo fails in a second, not after scoring.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from tunekit.errors import TunekitError

KINDS = {"min": "--min", "max": "--max", "max_drop": "--max-drop"}


@dataclass(frozen=True)
class Gate:
    metric: str
    kind: str  # min | max | max_drop
    limit: float


@dataclass(frozen=True)
class GateResult:
    gate: Gate
    value: float
    baseline: Optional[float]
    passed: bool
    interval: Optional[tuple[float, float]] = None  # the value's 95% bootstrap interval

    def describe(self) -> str:
        g = self.gate
        value = f"{g.metric} {self.value:.4f}"
        if self.interval:
            value += f" (95% interval {self.interval[0]:.4f}-{self.interval[1]:.4f})"
        if g.kind == "min":
            return f"{value} >= {g.limit}"
        if g.kind == "max":
            return f"{value} <= {g.limit}"
        return f"{value} within {g.limit} of baseline {self.baseline:.4f}"


def parse_gates(minimum: list[str], maximum: list[str], max_drop: list[str],
                extra_prefixes: tuple[str, ...] = ()) -> list[Gate]:
    """`extra_prefixes`: names of extra metric modules' results (<module>_<key>) a gate may use."""
    from tunekit.recipe.schema import METRICS

    known = sorted({name for names in METRICS.values() for name in names} | {"loss"})  # any task's
    gates = []
    for kind, items in (("min", minimum), ("max", maximum), ("max_drop", max_drop)):
        flag = KINDS[kind]
        for item in items:
            name, sep, value = item.partition("=")
            name = name.strip()
            try:
                limit = float(value)
            except ValueError:
                sep = ""
            if not sep or not name:
                raise TunekitError(f"{flag} {item!r} is not METRIC=VALUE", f"write e.g. {flag} accuracy=0.8")
            if not math.isfinite(limit):  # every comparison with NaN is false: the gate would test nothing
                raise TunekitError(f"{flag} {item!r}: {value.strip()} is not a finite number",
                                   f"give a number, e.g. {flag} {name}=0.8")
            if name not in known and not name.startswith(("precision_", "recall_", "f1_", *extra_prefixes)):
                raise TunekitError(f"{flag} names unknown metric {name!r}",
                                   f"use one of: {', '.join(known)}, or precision_/recall_/f1_<class>")
            if kind == "max_drop" and limit < 0:
                raise TunekitError(f"{flag} {item!r}: the allowed drop is negative", "give a drop >= 0")
            gates.append(Gate(name, kind, limit))
    return gates


def read_baseline(path: Path, task: str) -> dict:
    """An earlier metrics.json of the same task (a baseline from another task compares nothing)."""
    import json

    if Path(path).exists() and not Path(path).is_file():  # a folder, a pipe (reading would wait), a device
        raise TunekitError(f"the baseline {path} is not a regular file",
                           "give --baseline the metrics.json an earlier `tunekit eval` wrote")
    try:
        baseline = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TunekitError(f"cannot read the baseline {path}: {exc}",
                           "give --baseline the metrics.json an earlier `tunekit eval` wrote") from None
    if not isinstance(baseline, dict) or baseline.get("task") != task:
        raise TunekitError(f"the baseline {path} is from task {baseline.get('task') if isinstance(baseline, dict) else '?'!s}, "
                           f"not {task}", "compare against a metrics.json of the same task")
    return baseline


def check_gates(gates: list[Gate], values: dict[str, float], baseline: Optional[dict[str, float]],
                intervals: Optional[dict[str, list[float]]] = None) -> list[GateResult]:
    from tunekit.recipe.schema import LOWER_IS_BETTER

    results = []
    for gate in gates:
        if gate.metric not in values:
            raise TunekitError(f"{KINDS[gate.kind]} names metric {gate.metric!r}, which this evaluation does not produce",
                               f"use one of: {', '.join(sorted(values))}")
        value = values[gate.metric]
        base = None
        if gate.kind == "min":
            passed = value >= gate.limit
        elif gate.kind == "max":
            passed = value <= gate.limit
        else:
            if baseline is None:
                raise TunekitError("--max-drop needs --baseline", "give --baseline an earlier metrics.json")
            if gate.metric not in baseline:
                raise TunekitError(f"the baseline has no {gate.metric!r}", "compare a metric both evaluations produce")
            base = baseline[gate.metric]
            drop = value - base if gate.metric in LOWER_IS_BETTER else base - value
            passed = drop <= gate.limit + 1e-12
        interval = (intervals or {}).get(gate.metric)
        results.append(GateResult(gate, value, base, passed, tuple(interval) if interval else None))
    return results


def check_junit_path(path: Path) -> None:
    """--junit names a file that may be written: not a folder, a pipe or a device, and no file
    where a parent folder must be (missing parents are created)."""
    import stat

    path = Path(path)
    try:
        mode = path.stat().st_mode
    except (OSError, ValueError):
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise TunekitError(f"--junit {path} is a folder", f"give --junit a file name, e.g. {path / 'gates.xml'}")
    if mode is not None and not stat.S_ISREG(mode):
        raise TunekitError(f"--junit {path} is not a regular file (a pipe, socket or device)",
                           "give --junit the name of an XML file to write")
    for parent in path.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise TunekitError(f"--junit {path}: {parent} is a file, not a folder",
                                   "give --junit a path inside a folder")
            break


def write_junit(path: Path, results: list[GateResult], suite: str) -> None:
    """One <testcase> per gate; a failed gate carries a <failure> with its numbers."""
    check_junit_path(path)
    failures = sum(not r.passed for r in results)
    lines = ['<?xml version="1.0" encoding="UTF-8"?>',
             f'<testsuites tests="{len(results)}" failures="{failures}">',
             f'  <testsuite name={quoteattr(suite)} tests="{len(results)}" failures="{failures}" errors="0">']
    for r in results:
        name = quoteattr(f"{r.gate.kind} {r.gate.metric}")
        if r.passed:
            lines.append(f'    <testcase classname="tunekit.eval" name={name}/>')
        else:
            lines.append(f'    <testcase classname="tunekit.eval" name={name}>'
                         f'<failure message={quoteattr("gate failed: " + r.describe())}>{escape(r.describe())}'
                         '</failure></testcase>')
    lines += ["  </testsuite>", "</testsuites>", ""]
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text("\n".join(lines), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise TunekitError(f"cannot write --junit {path}: {exc.strerror or exc}",
                           "give --junit a file in a folder you can write to") from None
