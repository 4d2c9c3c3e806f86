"""The hostile-input corpus (issue 13, item 12): one table row per bad input, each run in-process
and checked the same way (tests/cli/test_hostile_corpus_*.py hold the tables).

Every case asserts:
  1. the exit code (2 bad input, 3 a failed quality gate);
  2. exactly one `error:` line followed by a `hint:` line on stderr, no traceback, no
     "unexpected error", and the case's phrase in the error output;
  3. a sentinel user folder beside the run (files, and subfolders named eval/ and model/) is
     byte-identical before and after (names and sha256 of every file);
  4. nothing under the case's folder was created, changed or left half-written, except the
     paths a late-failing case may write (`writes`), which must then be complete: no `.tmp`,
     `.partial`, `.old` or `.overwrite` leftovers anywhere;
and that the shared trained run and the tiny model are untouched.

List the cases with their exit codes:  python tests/corpus_checks.py --list
(or: python -m pytest tests/cli/test_hostile_corpus_*.py -q --collect-only; ids end in -exitN).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

CASE_SECONDS = 60  # a case that blocks (a FIFO read, a server that starts) fails instead of hanging
LEFTOVER_SUFFIXES = (".tmp", ".partial", ".old")


class CaseTimeout(BaseException):
    """Raised by the alarm; a BaseException, so tunekit's `except Exception` cannot swallow it."""


@dataclass
class Ctx:
    """What a case's setup may use: its own folder (also the working directory), the tiny base
    model, the shared trained run (read-only: copy it to change it) and values for the argv."""

    tmp: Path
    model: Path
    run: Optional[Path]
    monkeypatch: object
    values: dict = field(default_factory=dict)
    closers: list = field(default_factory=list)

    def write(self, name: str, content) -> Path:
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    def recipe(self, name: str = "recipe.yaml", **sections) -> Path:
        """A valid tiny classification recipe (run folder tmp/run), sections deep-merged on top;
        "{tmp}" in a value stands for the case's folder."""
        from conftest import tiny_recipe

        path = tiny_recipe(self.tmp, self.model, self.tmp / "reviews.csv", name, **sections)
        path.write_text(path.read_text(encoding="utf-8").replace("{tmp}", str(self.tmp)), encoding="utf-8")
        return path

    def recipe_text(self, transform: Callable[[str], str], name: str = "recipe.yaml", **sections) -> Path:
        path = self.recipe(name, **sections)
        path.write_text(transform(path.read_text(encoding="utf-8")), encoding="utf-8")
        return path

    def copy_run(self, name: str = "copy") -> Path:
        """A copy of the shared run (model, eval, marker) that a case may change."""
        assert self.run is not None, "this case needs the trained run"
        dest = self.tmp / name
        shutil.copytree(self.run, dest, ignore=shutil.ignore_patterns("checkpoints", "data", "logs"))
        return dest

    def busy_port(self) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        self.closers.append(sock.close)
        self.values["port"] = str(sock.getsockname()[1])
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Case:
    id: str                                   # command-what, unique
    setup: Optional[Callable[[Ctx], None]]    # writes the hostile input under ctx.tmp
    argv: tuple[str, ...]                     # {tmp}, {run}, {model} and setup's values are filled in
    exit: int                                 # 2 bad input, 3 a failed gate
    phrase: str                               # expected in the error output
    writes: tuple[str, ...] = ()              # paths under tmp a late failure may leave, complete

    @property
    def test_id(self) -> str:
        return f"{self.id}-exit{self.exit}"


def check_unique(cases: list[Case]) -> list[Case]:
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    return cases


def file_hashes(folder: Path) -> dict[str, str]:
    """Relative name -> sha256 of every file (links: their target; folders: 'dir'), under folder."""
    out = {}
    if not folder.exists():
        return out
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.is_symlink():
            out[rel] = "link:" + os.readlink(path)
        elif path.is_fifo():
            out[rel] = "fifo"
        elif path.is_dir():
            out[rel] = "dir"
        else:
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def make_sentinel(root: Path) -> Path:
    """A user's own folder beside the run: files, a nested folder, and folders named eval/ and model/."""
    folder = root / "sentinel"
    (folder / "eval").mkdir(parents=True)
    (folder / "eval" / "metrics.json").write_text('{"accuracy": 0.99, "mine": true}\n', encoding="utf-8")
    (folder / "eval" / "notes.txt").write_text("my own notes\n", encoding="utf-8")
    (folder / "model").mkdir()
    (folder / "model" / "config.json").write_text('{"model_type": "mine"}\n', encoding="utf-8")
    (folder / "model" / "weights.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "deep" / "er").mkdir(parents=True)
    (folder / "deep" / "er" / "data.csv").write_text("text,label\nkeep me,positive\n", encoding="utf-8")
    (folder / "README.md").write_text("# mine\n", encoding="utf-8")
    return folder


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*")
            if p.name.endswith(LEFTOVER_SUFFIXES) or ".overwrite" in p.name or ".partial" in p.name]


def flat(text: str) -> str:
    return " ".join(text.split())


def assert_one_error(result, case: Case) -> None:
    out = result.output
    err = result.stderr
    assert result.exit_code == case.exit, f"exit {result.exit_code}, wanted {case.exit}:\n{out}"
    assert "Traceback" not in out and "Traceback" not in err, out
    assert "unexpected error" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(errors) == 1, err
    assert any(line.startswith("hint:") for line in lines[errors[0] + 1:]), err
    assert case.phrase in flat(err), (case.phrase, err)


def run_case(case: Case, tmp: Path, model: Path, run: Optional[Path], monkeypatch) -> None:
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    monkeypatch.chdir(tmp)
    sentinel = make_sentinel(tmp)
    ctx = Ctx(tmp=tmp, model=model, run=run, monkeypatch=monkeypatch)
    from conftest import make_rows, write_rows_csv

    write_rows_csv(tmp / "reviews.csv", make_rows(120))
    try:
        if case.setup is not None:
            case.setup(ctx)
        values = {"tmp": str(tmp), "model": str(model), "run": str(run), **ctx.values}
        argv = [arg.format(**values) for arg in case.argv]
        sentinel_before = file_hashes(sentinel)
        tmp_before = file_hashes(tmp)
        shared = [model] + ([run.parent] if run else [])  # the run, its recipe and data, any stray sibling
        shared_before = [file_hashes(folder) for folder in shared]

        def timeout(signum, frame):
            raise CaseTimeout(f"{case.id}: still running after {CASE_SECONDS} s")

        previous = signal.signal(signal.SIGALRM, timeout)
        signal.alarm(CASE_SECONDS)
        try:
            result = CliRunner().invoke(app, argv)
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    finally:
        for close in ctx.closers:
            close()

    assert_one_error(result, case)
    assert file_hashes(sentinel) == sentinel_before, "the user's sentinel folder changed"
    assert [file_hashes(folder) for folder in shared] == shared_before, "the shared trained run or tiny model changed"
    after = file_hashes(tmp)
    allowed = lambda rel: any(rel == w or rel.startswith(w + os.sep) for w in case.writes)  # noqa: E731
    changed = sorted(rel for rel in set(tmp_before) | set(after)
                     if tmp_before.get(rel) != after.get(rel) and not allowed(rel))
    assert not changed, f"created, changed or removed under the case folder: {changed}"
    assert not leftovers(tmp), leftovers(tmp)
    for written in case.writes:  # a late failure may leave a complete output, never a half one
        target = tmp / written
        assert target.exists(), f"{written} is listed as written but is not there: drop it from the case"
        if target.is_dir():
            assert (target / ".tunekit-run").is_file(), f"{target} is not marked as tunekit's"
            if case.argv[0] == "eval":
                assert (target / "metrics.json").is_file(), sorted(p.name for p in target.iterdir())


def listing(cases: list[Case]) -> str:
    return "".join(f"{c.id}\t{c.exit}\n" for c in cases)


CORPUS_MODULES = ("test_hostile_corpus_recipes", "test_hostile_corpus_models")  # in tests/cli, in this order


def all_cases() -> list[Case]:
    import importlib
    import sys

    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here / "cli"))
    found = sorted(p.stem for p in (here / "cli").glob("test_hostile_corpus_*.py"))
    assert sorted(CORPUS_MODULES) == found, f"list every corpus module in CORPUS_MODULES: {found}"
    return check_unique([case for name in CORPUS_MODULES for case in importlib.import_module(name).CASES])


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--list"]:
        sys.exit("usage: python tests/corpus_checks.py --list   (prints: id<TAB>exit code, one case a line)")
    cases = all_cases()
    sys.stdout.write(listing(cases))
    sys.stderr.write(f"{len(cases)} cases\n")
