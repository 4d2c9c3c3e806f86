"""What every bad-input CLI test checks (imported by the tests under tests/cli)."""

from __future__ import annotations


def assert_clean_error(result, *phrases: str) -> None:
    """Exit code 2, one `error:` line followed by a `hint:` line, no traceback, and each phrase
    in the error output."""
    assert result.exit_code == 2, result.output
    err = result.stderr
    assert "Traceback" not in result.output
    lines = [line for line in err.splitlines() if line.strip()]
    starts = [i for i, line in enumerate(lines) if line.startswith("error:")]
    assert len(starts) == 1, err  # reports may come first (a failure mid-run); one error at the end
    assert any(line.startswith("hint:") for line in lines[starts[0]:]), err
    for phrase in phrases:
        assert phrase in err, (phrase, err)


class Ran:
    """A CLI run in-process, shaped like subprocess.CompletedProcess (returncode, stdout, stderr)."""

    def __init__(self, result) -> None:
        self.returncode = result.exit_code
        self.stdout = result.stdout
        self.stderr = result.stderr


def run_in_process(*args: str) -> Ran:
    """`tunekit ARGS` without a new interpreter: repeated evals of one run skip ~7 s of imports
    each. Use it after a test has shown the installed command in a subprocess once."""
    from typer.testing import CliRunner

    from tunekit.cli.app import app

    return Ran(CliRunner().invoke(app, list(args)))
