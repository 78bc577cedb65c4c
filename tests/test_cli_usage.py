"""The command line's own errors: a typo, a missing argument or a folder given for a config is the user's, not a crash.

Usage errors print click's usage line and message (with its suggestions) and exit 2; never "internal error".
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from deployable._version import __version__
from deployable.cli import main
from deployable.core.errors import DeployableError


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


@pytest.mark.parametrize(
    "argv",
    [
        ["optimize"],  # the config has no optimize recipes: refused after loading it
        ["gate"],  # no policy checks: refused after loading it
        ["audit", "--set", "evaluate.batch_size=0"],  # refused by validation, after reading the file
        ["run", "--set", "evaluate.batch_size=0"],
    ],
)
def test_folder_holding_deployable_yaml_is_read_by_every_config_command(
    tabular_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    out = tmp_path / "out"
    assert main([argv[0], str(tabular_project.parent), *argv[1:], "--out", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    # The message comes from the loaded config: it names the file inside the folder, not a missing path.
    assert f"{tabular_project}:" in err and "does not exist" not in err, err
    assert not out.exists()


def test_run_accepts_a_project_folder(tabular_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main(["run", str(tabular_project.parent), "--out", str(out), "-q"]) == 0
    assert (out / "results.json").is_file()


def test_folder_without_deployable_yaml_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "project.yaml").write_text("name: x\n")
    assert main(["run", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"{tmp_path}: is a folder without a deployable.yaml" in err
    assert "project.yaml" in err and "does not exist" not in err


def test_the_library_accepts_a_project_folder_too(tmp_path: Path) -> None:
    """``deployable.load_config`` (and so ``deployable.run``) resolves a folder like the CLI does."""
    from deployable.config import load_config

    (tmp_path / "deployable.yaml").write_text("name: x\n")
    with pytest.raises(DeployableError) as err:  # the folder is read: the error is about the file's keys
        load_config(tmp_path)
    assert "deployable.yaml" in str(err.value) and "does not exist" not in str(err.value)
    (tmp_path / "deployable.yaml").unlink()
    (tmp_path / "other.yaml").write_text("name: x\n")
    with pytest.raises(DeployableError, match=r"is a folder without a deployable\.yaml"):
        load_config(tmp_path)


def test_the_summary_says_how_many_nodes_a_quantized_variant_kept_in_float() -> None:
    from deployable.report._format import kept_in_float  # the terminal, the report and the model card all use it

    assert kept_in_float({"excluded_nodes": [{}] * 8, "quantized_nodes": 32}) == "8 of 40 nodes in float"
    assert kept_in_float({"excluded_nodes": [], "quantized_nodes": 40}) == ""
    assert kept_in_float({"recipe": "fp16"}) == ""
    assert kept_in_float({"excluded_nodes": 3, "quantized_nodes": 40}) == ""  # malformed: nothing said
