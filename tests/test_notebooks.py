"""The notebooks in ``notebooks/``: committed clean, and executed end to end with nbclient.

Each notebook runs in a fresh kernel of this interpreter (a temporary kernelspec pointing at
``sys.executable``, so the kernel sees the same environment as the tests), with a temporary
working directory, a time limit per cell, and a first cell, added by the test only, that makes
any network connection to a non-loopback address fail: a notebook that tries to download
something fails here. After the run the test checks that the notebook wrote only its own
folder inside the working directory, that its figures were displayed as PNG images, and that
no identifier from the DICOM headers it read reached any output.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PROJECT_ROOT

NOTEBOOK_DIR = PROJECT_ROOT / "notebooks"
#: Notebook -> (the one folder it writes in its working directory, least PNG figures shown).
NOTEBOOKS: dict[str, tuple[str, int]] = {
    "01_ecg_quickstart.ipynb": ("mayo_dx_quickstart", 2),
    "02_ct_pancreas.ipynb": ("mayo_dx_ct", 3),
    "03_llm_tools.ipynb": ("mayo_dx_tools", 1),
}
CELL_TIMEOUT_S = 300
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "StudyDate", "AcquisitionDateTime",
                        "InstitutionName", "ReferringPhysicianName", "AccessionNumber", "OtherPatientIDs")

#: Added before the notebook's own cells: non-loopback connections and name lookups fail loudly.
NETWORK_GUARD = '''
import socket as _socket

_LOCAL = {"127.0.0.1", "::1", "localhost"}
_connect, _connect_ex, _getaddrinfo = _socket.socket.connect, _socket.socket.connect_ex, _socket.getaddrinfo


def _check(address):
    host = address[0] if isinstance(address, tuple) else None
    if host is not None and str(host) not in _LOCAL:
        raise OSError(f"notebook tried to reach the network: {address!r}")


def _guarded_connect(self, address):
    _check(address)
    return _connect(self, address)


def _guarded_connect_ex(self, address):
    _check(address)
    return _connect_ex(self, address)


def _guarded_getaddrinfo(host, *arguments, **options):
    if host is not None and str(host) not in _LOCAL:
        raise OSError(f"notebook tried to resolve {host!r}")
    return _getaddrinfo(host, *arguments, **options)


_socket.socket.connect, _socket.socket.connect_ex, _socket.getaddrinfo = (
    _guarded_connect, _guarded_connect_ex, _guarded_getaddrinfo)
'''


def _notebook_paths() -> list[Path]:
    return sorted(NOTEBOOK_DIR.glob("*.ipynb"))


def test_the_expected_notebooks_are_committed() -> None:
    assert [path.name for path in _notebook_paths()] == sorted(NOTEBOOKS)


@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_committed_notebook_is_clean(name: str) -> None:
    """Valid nbformat 4, python3 kernelspec, no outputs, no execution counts, prose between code."""
    nbformat = pytest.importorskip("nbformat", reason="notebook checks need the [dev] extra (nbformat)")
    path = NOTEBOOK_DIR / name
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    assert notebook.nbformat == 4
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    cells = notebook.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith("# "), "a notebook opens with its title"
    for index, cell in enumerate(cells):
        assert cell.source.strip(), f"cell {index} is empty"
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{name} cell {index} has outputs: strip them before committing"
            assert cell.execution_count is None, f"{name} cell {index} has an execution count"
            assert "execution" not in cell.metadata, f"{name} cell {index} keeps execution timings"
    markdown = sum(cell.cell_type == "markdown" for cell in cells)
    code = sum(cell.cell_type == "code" for cell in cells)
    assert markdown >= code / 2, f"{name}: {markdown} markdown cells for {code} code cells; explain the steps"
    assert path.stat().st_size < 60_000, f"{name} is {path.stat().st_size} bytes; keep notebooks small"


def _kernel_manager(kernel_dir: Path) -> Any:
    """A kernel manager for this interpreter (not whatever ``python`` is first on PATH)."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec = kernel_dir / "mayo-dx-notebook-test"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "mayo-dx tests", "language": "python",
    }))
    manager = KernelManager(kernel_name="mayo-dx-notebook-test",
                            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    assert manager.kernel_spec.argv[0] == sys.executable
    return manager


def _identifiers(dicom_files: list[Path]) -> set[str]:
    """Identifying header values (at least 4 characters) of the DICOM files a notebook read."""
    import pydicom

    values: set[str] = set()
    for path in dicom_files:
        dataset = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in IDENTIFYING_KEYWORDS:
            value = str(dataset.get(keyword, "") or "")
            values |= {part for part in value.replace("^", " ").split() + [value] if len(part) >= 4}
    return values - {"Anonymous"}


def _outputs_text(notebook: Any) -> tuple[str, int]:
    """All text the executed notebook shows, and how many PNG images it displayed."""
    texts: list[str] = []
    images = 0
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            texts.append(output.get("text", ""))
            data = output.get("data", {})
            texts += [str(value) for kind, value in data.items() if kind.startswith("text/")]
            images += "image/png" in data
    return "\n".join(texts), images


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(NOTEBOOKS))
def test_notebook_executes(name: str, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="notebook execution needs the [dev] extra (nbformat)")
    client_module = pytest.importorskip("nbclient", reason="notebook execution needs the [dev] extra (nbclient)")
    pytest.importorskip("ipykernel", reason="notebook execution needs the [dev] extra (ipykernel)")
    pytest.importorskip("matplotlib", reason="the notebooks draw figures: needs the [plot] extra")
    if name != "02_ct_pancreas.ipynb":
        pytest.importorskip("lightning", reason="this notebook trains a model: needs the [train] extra")
    if name == "03_llm_tools.ipynb":
        pytest.importorskip("mcp", reason="this notebook runs the MCP server: needs the [llm] extra")
    folder, least_images = NOTEBOOKS[name]
    notebook = nbformat.read(NOTEBOOK_DIR / name, as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(NETWORK_GUARD))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    manager = _kernel_manager(tmp_path / "kernels")
    client = client_module.NotebookClient(notebook, km=manager, timeout=CELL_TIMEOUT_S,
                                          resources={"metadata": {"path": str(cwd)}})
    started = time.perf_counter()
    try:
        client.execute(cleanup_kc=True)  # raises CellExecutionError, with the cell and traceback, when a cell fails
    finally:
        if manager.has_kernel and manager.is_alive():
            manager.shutdown_kernel(now=True)
    print(f"\n{name}: executed in {time.perf_counter() - started:.1f} s")

    assert sorted(path.name for path in cwd.iterdir()) == [folder], "a notebook writes only its own folder"
    text, images = _outputs_text(notebook)
    assert images >= least_images, f"{name} displayed {images} PNG figures, expected at least {least_images}"
    assert "Traceback" not in text
    from pydicom.data import get_testdata_file

    read = [Path(get_testdata_file("waveform_ecg.dcm"))] + sorted((cwd / folder).rglob("slice_*.dcm"))[:1]
    for value in _identifiers(read):
        assert value not in text, f"{name}: the identifier {value!r} from a DICOM header reached the outputs"
