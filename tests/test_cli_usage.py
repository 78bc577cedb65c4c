"""The command line's own errors: a typo or a missing argument is the user's, not a crash.

Usage errors print click's usage line and message (with its suggestions) and exit 2; never "internal error".
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from deployable._version import __version__
from deployable.cli import main


def _usage(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert "internal error" not in err and "please report it" not in err and "Traceback" not in err, err
    return err


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["relase", "x"]) == 2
    err = _usage(capsys)
    assert "Usage: deployable [OPTIONS] COMMAND" in err
    assert "No such command 'relase'." in err


def test_mistyped_command_gets_a_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sacn", "model.pt"]) == 2
    err = _usage(capsys)
    assert "No such command 'sacn'. Did you mean 'scan'?" in err


def test_unknown_option_names_the_command_and_the_close_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--outt", "x", "y"]) == 2
    err = _usage(capsys)
    assert "Usage: deployable run [OPTIONS]" in err
    assert "No such option: --outt" in err and "--out" in err.split("--outt", 1)[1]


def test_missing_argument_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run"]) == 2
    err = _usage(capsys)
    assert "Usage: deployable run [OPTIONS]" in err
    assert "Missing argument 'config'" in err


def test_usage_error_exits_2_from_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "deployable.cli", "run", "--outt", "x", "y"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "No such option: --outt" in proc.stderr and "internal error" not in proc.stderr


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip() == f"deployable {__version__}"
    assert captured.err == ""
