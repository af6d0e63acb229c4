"""The README's tour snippets run as written (``python`` and ``bash`` blocks; ``text`` blocks are commands only).

They run in a fresh folder holding ``records/example.hea`` (a generated 12-lead record) with
the default models folder (``MAYO_DX_MODELS``) holding a small real artifact named as the demo's
ECG model, the state ``make demo`` leaves behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytest.importorskip("torch")
pytest.importorskip("mcp")

BLOCK = re.compile(r"^```(python|bash)\n(.*?)^```", re.MULTILINE | re.DOTALL)
TOUR = PROJECT_ROOT.joinpath("README.md").read_text().split("## A short tour", 1)[1].split("## Layout", 1)[0]
BLOCKS = [(language, code) for language, code in BLOCK.findall(TOUR)]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    import wfdb

    from mayo_dx.ecg.synthetic import generate_ecg
    from tests.export.tiny import ecg_card, export_tiny_ecg

    folder = tmp_path_factory.mktemp("readme")
    models = folder / "models"
    models.mkdir()
    export_tiny_ecg(models / "demo_ecg_synthetic_superdiagnostic.onnx",
                    card=ecg_card(name="demo_ecg_synthetic_superdiagnostic"))
    record = generate_ecg(["NORM"], fs=500.0, seed=4)
    (folder / "records").mkdir()
    wfdb.wrsamp("example", fs=500, units=["mV"] * 12, sig_name=list(record.leads), p_signal=record.signal.T.astype(float),
                fmt=["16"] * 12, write_dir=str(folder / "records"))
    binaries = str(Path(sys.executable).parent)
    environment = {**os.environ, "MAYO_DX_MODELS": str(models), "PATH": binaries + os.pathsep + os.environ["PATH"],
                   "PYTHONPATH": str(PROJECT_ROOT)}
    return folder, environment


def test_the_tour_has_a_snippet_per_user() -> None:
    assert [language for language, _ in BLOCKS] == ["python", "bash", "bash"]


@pytest.mark.parametrize("number", range(len(BLOCKS)))
def test_readme_snippet_runs(number: int, workspace: tuple[Path, dict[str, str]]) -> None:
    folder, environment = workspace
    language, code = BLOCKS[number]
    command = [sys.executable, "-c", code] if language == "python" else ["bash", "-euo", "pipefail", "-c", code]
    result = subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, f"README {language} block {number} failed:\n{code}\n{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), "a README snippet should show something"
    if "mayo-dx predict" in code:
        assert '"kind"' in (folder / "results.jsonl").read_text()
