"""The runtime layer stays torch-free (DESIGN.md section 2)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

RUNTIME_IMPORTS = [
    "mayo_dx",
    "mayo_dx.ecg",
    "mayo_dx.ecg.io",
    "mayo_dx.ecg.signal",
    "mayo_dx.ecg.quality",
    "mayo_dx.ecg.synthetic",
    "mayo_dx.ecg.ptbxl",
    "mayo_dx.ecg.synthetic_ptbxl",
    "mayo_dx.imaging",
    "mayo_dx.imaging.read",
    "mayo_dx.imaging.dicom",
    "mayo_dx.imaging.nifti",
    "mayo_dx.imaging.resample",
    "mayo_dx.imaging.measure",
    "mayo_dx.imaging.seg_out",
    "mayo_dx.imaging.phantom",
    "mayo_dx.imaging.phantom_io",
    "mayo_dx.imaging.msd",
    "mayo_dx.metrics",
    "mayo_dx.calibration",
    "mayo_dx.ecg.network_specs",
    "mayo_dx.paths",
    "mayo_dx.models_folder",
    "mayo_dx.artifact",
    "mayo_dx.parallel",
    "mayo_dx.runtime",
    "mayo_dx.runtime_ecg",
    "mayo_dx.runtime_ct",
    "mayo_dx.runtime_ct_checks",
    "mayo_dx.imaging.inference",
    "mayo_dx.imaging.data_cache",
    "mayo_dx.runtime_saliency",
    "mayo_dx.runtime_batch",
    "mayo_dx.scale",
    "mayo_dx.cli_artifacts",
    "mayo_dx.ecg.heart_rate",
    "mayo_dx.plots",
    "mayo_dx.plots_figure",
    "mayo_dx.plots_ecg",
    "mayo_dx.plots_ct",
    "mayo_dx.plots_training",
    "mayo_dx.llm",
    "mayo_dx.llm.guard",
    "mayo_dx.llm.phi",
    "mayo_dx.llm.audit",
    "mayo_dx.llm.catalog",
    "mayo_dx.llm.tools",
    "mayo_dx.llm.toolbox",
    "mayo_dx.llm.server",
    "mayo_dx.llm.cli",
    "mayo_dx.ecg.sources",
    "mayo_dx.ecg.manifest",
    "mayo_dx.ecg.signal_cache",
    "mayo_dx.cli_training",
    "mayo_dx.cli",
]
FORBIDDEN = ("torch", "lightning", "pytorch_lightning", "monai", "torchvision", "torchmetrics")


def test_runtime_imports_leave_torch_out_of_sys_modules() -> None:
    code = (
        "import importlib, json, sys\n"
        f"for name in {RUNTIME_IMPORTS!r}:\n"
        "    importlib.import_module(name)\n"
        "from mayo_dx.ecg import read\n"
        "from pydicom.data import get_testdata_file\n"
        "read(get_testdata_file('waveform_ecg.dcm'))\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT, check=False, timeout=120
    )
    assert result.returncode == 0, result.stderr
    leaked = json.loads(result.stdout.strip().splitlines()[-1])
    assert leaked == [], f"runtime layer imported {leaked}"


@pytest.mark.parametrize("module", RUNTIME_IMPORTS)
def test_runtime_modules_have_docstrings(module: str) -> None:
    imported = __import__(module, fromlist=["_"])
    assert imported.__doc__ and len(imported.__doc__.strip()) > 40
