"""Read throughput of the ECG readers on the real files in ../shared/data/ecg.

For each group of real records, times ``mayo_dx.ecg.read`` (which wraps ``wfdb.rdrecord`` or
``pydicom``, converts units and places leads) against the bare library call on the same files,
and reports records per second for both. Results replace the "ECG read throughput" section
of benchmarks/RESULTS.md.

Run: ``.venv/bin/python benchmarks/ecg_read_throughput.py`` (or ``make bench``).
"""

from __future__ import annotations

import platform
import statistics
import time
from pathlib import Path
from typing import Callable

import pydicom
import wfdb
from pydicom.data import get_testdata_file

from mayo_dx.ecg import read

from results_file import write_section  # benchmarks/ is the script's own folder

ROOT = Path(__file__).resolve().parents[1]
SHARED_ECG = ROOT.parent / "shared" / "data" / "ecg"
RESULTS = ROOT / "benchmarks" / "RESULTS.md"
SECTION = "## ECG read throughput"


def best_rate(paths: list[Path], reader: Callable[[Path], object], repeats: int = 5) -> float:
    """Records per second, the best of ``repeats`` passes over ``paths`` (after one warm-up)."""
    for path in paths:
        reader(path)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            reader(path)
        timings.append(time.perf_counter() - start)
    return len(paths) / min(timings)


def main() -> None:
    groups = {
        "CinC 2021 (PTB-XL/Georgia/Chapman), 500 Hz x 10 s, .mat": sorted(SHARED_ECG.glob("cinc2021/*.hea")),
        "PTB-XL 00001_lr, 100 Hz x 10 s, format 16": sorted(SHARED_ECG.glob("ptbxl/*.hea")),
        "PTB Diagnostic s0010_re, 15 leads, 1000 Hz x 38.4 s": sorted(SHARED_ECG.glob("ptb_diagnostic/s0010_re.hea")),
        "MIT-BIH 100, 2 leads, 360 Hz x 30 min, format 212": sorted(SHARED_ECG.glob("ptb_diagnostic/100.hea")),
    }
    rows = []
    for name, paths in groups.items():
        if not paths:
            continue
        ours = best_rate(paths, read)
        bare = best_rate(paths, lambda path: wfdb.rdrecord(str(path.with_suffix(""))))
        rows.append((name, len(paths), ours, bare))
    dicom = [Path(get_testdata_file("waveform_ecg.dcm"))]
    rows.append(
        (
            "DICOM 12-lead (pydicom waveform_ecg.dcm), 1000 Hz x 10 s",
            1,
            best_rate(dicom, read, repeats=20),
            best_rate(dicom, lambda path: pydicom.dcmread(path).waveform_array(0), repeats=20),
        )
    )
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python benchmarks/ecg_read_throughput.py` ({time.strftime('%Y-%m-%d')}, "
        f"{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
        f"wfdb {wfdb.__version__}, pydicom {pydicom.__version__}; best of 5 passes after a warm-up, files in page cache)",
        "",
        "| records | files | `mayo_dx.ecg.read` records/s | bare library records/s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, count, ours, bare in rows:
        lines.append(f"| {name} | {count} | {ours:,.0f} | {bare:,.0f} | {ours / bare:.2f} |")
    total = sum(count for _, count, _, _ in rows[:1])
    lines += ["", f"Median over groups of the ratio ours/bare: {statistics.median(r[2] / r[3] for r in rows):.2f} "
              f"(bare = `wfdb.rdrecord` or `pydicom.dcmread(...).waveform_array`; {total} CinC files in the first row).", ""]
    text = "\n".join(lines)
    print(text)
    write_section(SECTION, text, RESULTS)


if __name__ == "__main__":
    main()
