"""Hostile-input corpus, part 1: recipes, data files and run folders (validate, prepare, tokenize,
finetune). Each row: id, setup (writes the hostile input under the case's folder), argv, exit
code, a phrase of the error. The checks every row gets are in tests/corpus_checks.py.

    python tests/cli/test_hostile_corpus_recipes.py --list     # id<TAB>exit, one case a line
"""

from __future__ import annotations

if __name__ == "__main__":  # run as a script: tests/ holds corpus_checks and conftest
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import os

import pytest

from corpus_checks import Case, Ctx, check_unique, listing, run_case

R = "{tmp}/recipe.yaml"  # where ctx.recipe() writes

ALIAS_BOMB = "".join(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else 'x, x, x, x, x, x, x, x, x'}]\n"
                     for prev, name in zip([None, "a", "b", "c", "d", "e", "f", "g"], "abcdefgh"))


def bad_jsonl(ctx: Ctx, line: str, at: int, name: str = "data.jsonl") -> None:
    rows = [json.dumps({"text": f"good film {i}" if i % 2 else f"bad film {i}",
                        "label": "positive" if i % 2 else "negative"}) for i in range(40)]
    rows[at - 1] = line
    ctx.write(name, "\n".join(rows) + "\n")
    ctx.recipe(data={"train": str(ctx.tmp / name)})


def data_file(name: str, content):
    def setup(ctx: Ctx) -> None:
        ctx.write(name, content)
        ctx.recipe(data={"train": str(ctx.tmp / name)})
    return setup


def fifo_data(ctx: Ctx) -> None:
    os.mkfifo(ctx.tmp / "data.csv")
    ctx.recipe(data={"train": str(ctx.tmp / "data.csv")})


def loop_data(ctx: Ctx) -> None:
    os.symlink(ctx.tmp / "loop.csv", ctx.tmp / "loop.csv")
    ctx.recipe(data={"train": str(ctx.tmp / "loop.csv")})


def invalid_utf8_csv(ctx: Ctx) -> None:
    good = (ctx.tmp / "reviews.csv").read_bytes()
    ctx.write("latin1.csv", good[:200] + b"caf\xe9 cr\xe8me,positive\n" + good[200:])
    ctx.recipe(data={"train": str(ctx.tmp / "latin1.csv")})


def unknown_test_label(ctx: Ctx) -> None:
    ctx.write("test.csv", "text,label\ngood film,positive\nso-so film,neutral\n")
    ctx.recipe(data={"test": str(ctx.tmp / "test.csv")})


def home_output(ctx: Ctx) -> None:
    ctx.write("home/.profile", "export X=1\n")
    ctx.monkeypatch.setenv("HOME", str(ctx.tmp / "home"))
    ctx.recipe_text(lambda t: t.replace(f"output_dir: {ctx.tmp / 'run'}", "output_dir: ~/"))


def symlink_to_sentinel(ctx: Ctx) -> None:
    os.symlink(ctx.tmp / "sentinel", ctx.tmp / "link")
    ctx.recipe(output_dir=str(ctx.tmp / "link"))


def data_in_output_dir(ctx: Ctx) -> None:
    data = ctx.write("project/reviews.csv", (ctx.tmp / "reviews.csv").read_bytes())
    ctx.recipe(data={"train": str(data)}, output_dir=str(data.parent))


def recipe_fifo(ctx: Ctx) -> None:
    os.mkfifo(ctx.tmp / "recipe.fifo")


def recipe(**sections):
    return lambda ctx: ctx.recipe(**sections)


def recipe_text(transform):
    return lambda ctx: ctx.recipe_text(transform)


def raw(content):
    return lambda ctx: ctx.write("recipe.yaml", content)


def half_run(ctx: Ctx) -> None:
    """A run folder that tunekit made (marked), with nothing in it yet: no checkpoint to resume."""
    ctx.write("run/.tunekit-run", '{"kind": "run", "id": "0123456789abcdef0123456789abcdef"}')
    ctx.recipe()


CASES = check_unique([
    # -- validate: the recipe file itself --------------------------------------------------------
    Case("validate-unknown-key", recipe(train={"lrr": 0.1}), ("validate", R), 2, "did you mean 'train.lr'"),
    Case("validate-wrong-type", recipe(train={"batch_size": "many"}), ("validate", R), 2, "train.batch_size"),
    Case("validate-binary-recipe", raw(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))), ("validate", R), 2,
         "binary data"),
    Case("validate-non-utf8-recipe", raw("name: café\ntask: classification\n".encode("latin-1")),
         ("validate", R), 2, "is not UTF-8"),
    Case("validate-empty-recipe", raw(""), ("validate", R), 2, "required key is missing"),
    Case("validate-recipe-is-a-list", raw("- name: tiny\n- task: classification\n"), ("validate", R), 2,
         "must be a mapping"),
    Case("validate-yaml-alias-bomb", recipe_text(lambda t: t + ALIAS_BOMB), ("validate", R), 2, "alias bomb"),
    Case("validate-recursive-alias", raw("name: &loop\n  inner: *loop\n"), ("validate", R), 2, "recursive alias"),
    Case("validate-nested-too-deep", raw("name: " + "[" * 5000 + "]" * 5000 + "\n"), ("validate", R), 2,
         "nested too deeply"),
    Case("validate-tab-indentation", raw("name: tiny\n\ttask: classification\n"), ("validate", R), 2,
         "not valid YAML"),
    Case("validate-recipe-is-a-folder", lambda ctx: (ctx.tmp / "recipes").mkdir(), ("validate", "{tmp}/recipes"),
         2, "is a folder"),
    Case("validate-recipe-is-a-fifo", recipe_fifo, ("validate", "{tmp}/recipe.fifo"), 2, "not a regular file"),
    Case("validate-recipe-is-dev-null", None, ("validate", "/dev/null"), 2, "not a regular file"),
    Case("validate-extends-a-binary-file", lambda ctx: ctx.write("base.yaml", b"\x00\x01\x02") and ctx.recipe_text(
        lambda t: "extends: base.yaml\n" + t), ("validate", R), 2, "binary data"),
    Case("validate-missing-recipe", None, ("validate", "{tmp}/absent.yaml"), 2, "recipe file not found"),
    Case("validate-extends-missing", recipe_text(lambda t: "extends: absent-base.yaml\n" + t), ("validate", R), 2,
         "recipe file not found"),
    Case("validate-extends-itself", recipe_text(lambda t: "extends: recipe.yaml\n" + t), ("validate", R), 2,
         "makes a cycle"),
    Case("validate-nan-in-recipe", recipe_text(lambda t: t.replace("lr: 0.005", "lr: .nan")), ("validate", R), 2,
         "train.lr: nan is not a finite number"),
    Case("validate-inf-in-recipe", recipe_text(lambda t: t.replace("epochs: 5", "epochs: .inf")), ("validate", R),
         2, "train.epochs: inf is not a finite number"),
    Case("validate-overflowing-number", recipe_text(lambda t: t.replace("epochs: 5", "epochs: 1e400")),
         ("validate", R), 2, "train.epochs: 1e400 is not a finite number"),
    Case("validate-yaml11-boolean-for-number", recipe_text(lambda t: t.replace("epochs: 5", "epochs: yes")),
         ("validate", R), 2, "train.epochs"),
    Case("validate-max-length-zero", recipe(tokenize={"max_length": 0}), ("validate", R), 2,
         "tokenize.max_length"),
    Case("validate-split-leaves-no-train", recipe(data={"split": {"validation": 0.9, "test": 0.5}}),
         ("validate", R), 2, "must leave rows for training"),
    Case("validate-set-nan", recipe(), ("validate", R, "--set", "train.lr=nan"), 2,
         "train.lr: nan is not a finite number"),
    Case("validate-set-minus-inf", recipe(), ("validate", R, "--set", "train.lr=-inf"), 2, "not a finite number"),
    Case("validate-set-without-equals", recipe(), ("validate", R, "--set", "train.lr"), 2, "is not KEY=VALUE"),
    Case("validate-set-without-key", recipe(), ("validate", R, "--set", "=3"), 2, "is not KEY=VALUE"),
    Case("validate-set-wrong-type", recipe(), ("validate", R, "--set", "train.epochs=lots"), 2, "train.epochs"),
    Case("validate-set-empty-output-dir", recipe(), ("validate", R, "--set", "output_dir="), 2,
         "output_dir is empty"),
    # -- prepare: data files ---------------------------------------------------------------------
    Case("prepare-data-train-empty-string", recipe(data={"train": ""}), ("prepare", R), 2, "an empty path"),
    Case("validate-data-train-empty-list", recipe(data={"train": []}), ("validate", R), 2, "an empty source list"),
    Case("prepare-missing-data-file", recipe(data={"train": "{tmp}/missing.csv"}), ("prepare", R), 2,
         "data file not found"),
    Case("prepare-empty-data-file", data_file("empty.csv", ""), ("prepare", R), 2, "empty.csv"),
    Case("prepare-header-only-csv", data_file("header.csv", "text,label\n"), ("prepare", R), 2,
         "no training rows are left"),
    Case("prepare-missing-column", recipe(data={"columns": {"text": "review", "label": "label"}}), ("prepare", R),
         2, "no column 'review'"),
    Case("prepare-unknown-label-in-test", unknown_test_label, ("prepare", R), 2, "unknown label 'neutral'"),
    Case("prepare-fifo-as-data", fifo_data, ("prepare", R), 2, "named pipe (FIFO)"),
    Case("prepare-device-as-data", recipe(data={"train": "/dev/zero"}), ("prepare", R), 2, "is a device"),
    Case("prepare-folder-as-data", lambda ctx: (ctx.tmp / "data.csv").mkdir() or ctx.recipe(
        data={"train": str(ctx.tmp / "data.csv")}), ("prepare", R), 2, "not one written by datasets.save_to_disk"),
    Case("prepare-symlink-loop-as-data", loop_data, ("prepare", R), 2, "loop.csv"),
    Case("prepare-jsonl-bad-line", lambda ctx: bad_jsonl(ctx, '{"text": "broken', 7), ("prepare", R), 2,
         "line 7 is not valid JSON"),
    Case("prepare-jsonl-list-line", lambda ctx: bad_jsonl(ctx, "[1, 2]", 12), ("prepare", R), 2,
         "line 12 is a JSON list"),
    Case("prepare-csv-invalid-utf8", invalid_utf8_csv, ("prepare", R), 2, "is not valid UTF-8"),
    Case("prepare-gzip-that-is-not", data_file("data.csv.gz", "text,label\nplain text,positive\n"),
         ("prepare", R), 2, "cannot read"),
    Case("prepare-corrupt-parquet", data_file("data.parquet", b"PAR1 not really parquet"), ("prepare", R), 2,
         "cannot read"),
    # -- prepare: where the run goes ---------------------------------------------------------------
    Case("prepare-output-dir-root", recipe(output_dir="/"), ("prepare", R), 2, "filesystem root"),
    Case("prepare-output-dir-dot", recipe(output_dir="."), ("prepare", R), 2, "working directory"),
    Case("prepare-output-dir-home", home_output, ("prepare", R), 2, "home folder"),
    Case("prepare-output-dir-empty", recipe(output_dir=""), ("prepare", R), 2, "output_dir is empty"),
    Case("prepare-output-dir-a-file", recipe(output_dir="{tmp}/reviews.csv"), ("prepare", R), 2,
         "an input of this run"),
    Case("prepare-output-dir-a-plain-file", lambda ctx: ctx.write("afile", "x") and ctx.recipe(
        output_dir=str(ctx.tmp / "afile")), ("prepare", R), 2, "is a file, not a folder"),
    Case("prepare-output-dir-foreign-folder", recipe(output_dir="{tmp}/sentinel"), ("prepare", R), 2,
         "is not empty and is not a tunekit folder"),
    Case("prepare-output-dir-foreign-eval-folder", recipe(output_dir="{tmp}/sentinel/eval"), ("prepare", R), 2,
         "is not a tunekit folder"),
    Case("prepare-output-dir-link-to-foreign", symlink_to_sentinel, ("prepare", R), 2, "is not a tunekit folder"),
    Case("prepare-output-dir-holds-the-data", data_in_output_dir, ("prepare", R), 2, "an input of this run"),
    Case("prepare-output-dir-is-the-recipe", recipe(output_dir="{tmp}/recipe.yaml"), ("prepare", R), 2,
         "an input of this run"),
    Case("prepare-output-dir-under-a-file", recipe(output_dir="{tmp}/reviews.csv/run"), ("prepare", R), 2,
         "is a file, not a folder"),
    Case("prepare-output-dir-inside-the-model", lambda ctx: ctx.recipe(output_dir=str(ctx.model / "run")),
         ("prepare", R), 2, "lies inside"),
    Case("validate-duplicate-key", recipe_text(lambda t: t + "train:\n  epochs: 2\n"),
         ("validate", R), 2, "key 'train' appears twice"),
    # -- command-line mistakes: tunekit's two lines too, not click's usage text ---------------------
    Case("finetune-nproc-zero", recipe(), ("finetune", R, "--nproc", "0"), 2, "Invalid value for '--nproc'"),
    Case("prepare-sample-zero", recipe(), ("prepare", R, "--sample", "0"), 2, "Invalid value for '--sample'"),
    Case("prepare-unknown-option", recipe(), ("prepare", R, "--bogus"), 2, "No such option: --bogus"),
    Case("unknown-command", None, ("bogus",), 2, "No such command 'bogus'"),
    # -- tokenize ----------------------------------------------------------------------------------
    Case("tokenize-max-length-above-positions", recipe(tokenize={"max_length": 4096}), ("tokenize", R), 2,
         "above the 64 positions"),
    # checked after prepare and tokenize, which leave a complete run
    Case("tokenize-compare-missing-tokenizer", recipe(), ("tokenize", R, "--compare", "{tmp}/no-tokenizer"), 2,
         "model folder not found", writes=("run",)),
    Case("tokenize-train-tokenizer-without-size", recipe(), ("tokenize", R, "--train-tokenizer", "bpe"), 2,
         "needs a vocabulary size"),
    # -- finetune ----------------------------------------------------------------------------------
    Case("finetune-foreign-folder", recipe(output_dir="{tmp}/sentinel"), ("finetune", R), 2,
         "is not empty and is not a tunekit folder"),
    Case("finetune-foreign-folder-overwrite", recipe(output_dir="{tmp}/sentinel"), ("finetune", R, "--overwrite"),
         2, "is not empty and is not a tunekit folder"),
    Case("finetune-resume-nothing", recipe(), ("finetune", R, "--resume"), 2, "nothing to resume"),
    Case("finetune-resume-marked-run-without-checkpoints", half_run, ("finetune", R, "--resume"), 2,
         "nothing to resume"),
    # the model is resolved after prepare, which leaves a complete run folder with its prepared data
    Case("finetune-model-missing", recipe(model={"name": "{tmp}/models/absent"}), ("finetune", R), 2,
         "model folder not found", writes=("run",)),
    Case("finetune-hub-id-offline", recipe(model={"name": "someone/some-model"}), ("finetune", R), 2, "offline",
         writes=("run",)),
    Case("finetune-gpu-memory-without-dry-run", recipe(), ("finetune", R, "--gpu-memory", "24GiB"), 2,
         "only applies to a plan"),
    Case("finetune-gpu-memory-not-a-size", recipe(), ("finetune", R, "--dry-run", "--gpu-memory", "lots"), 2,
         "is not a memory size"),
])


@pytest.mark.parametrize("case", CASES, ids=[c.test_id for c in CASES])
def test_hostile_input(case, tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    run_case(case, tmp_path, tiny_model_dir, None, monkeypatch)


if __name__ == "__main__":
    if sys.argv[1:] != ["--list"]:
        sys.exit("usage: python tests/cli/test_hostile_corpus_recipes.py --list")
    sys.stdout.write(listing(CASES))
