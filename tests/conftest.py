"""Shared fixtures: the real sample data beside the project, and pydicom's bundled files."""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """Path under ``../shared/data``; the test is skipped with a reason when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real sample data not present: {path} (see ../shared/data/README.md)")
    return path


def shared_files(pattern: str) -> list[Path]:
    """Sorted files under ``../shared/data`` matching a glob (empty when the folder is absent)."""
    if not SHARED_DATA.exists():
        return []
    return sorted(SHARED_DATA.glob(pattern))


@pytest.fixture(scope="session")
def waveform_ecg_path() -> Path:
    """pydicom's real 12-lead DICOM ECG (always available with pydicom)."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("waveform_ecg.dcm"))


@pytest.fixture(scope="session")
def ct_small_path() -> Path:
    """pydicom's real CT slice (always available with pydicom)."""
    from pydicom.data import get_testdata_file

    return Path(get_testdata_file("CT_small.dcm"))


@pytest.fixture()
def one_torch_thread():
    """torch on one thread for the test (CI has 2 cores and pytest workers), restored afterwards.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
