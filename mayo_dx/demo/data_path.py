"""Demo steps on the data path: readers, quality, synthetic data, preprocessing, CT phantoms.

1. read the real 12-lead DICOM ECG that ships with pydicom and check its quality;
2. write a PTB-XL-shaped folder of labelled synthetic ECGs and load it as the benchmark task;
3. preprocess records with the shared implementation (100 Hz, baseline removed);
4. corrupt a copy of a record (a flat lead, a noise burst) and show the quality verdict;
5. generate an abdominal CT phantom, write it as a real DICOM series, read it back, and
   measure the pancreas and lesion from its labels.

No patient identifiers appear: the real ECG is reported by its signal facts only.

Example:
    >>> from mayo_dx.demo.data_path import real_ecg
    >>> real_ecg(Path("."), {})["record"]["fs"]
    1000.0
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["abstention", "ct_phantom", "preprocess_records", "real_ecg", "synthetic_ptbxl"]

StepResult = dict[str, Any]


def real_ecg(out: Path, context: dict[str, Any]) -> StepResult:
    from pydicom.data import get_testdata_file

    from mayo_dx.ecg import check_quality, is_acceptable, read

    record = read(get_testdata_file("waveform_ecg.dcm"))
    issues = check_quality(record)
    context["real_record"] = record
    return {
        "source": "pydicom test data waveform_ecg.dcm (real 12-lead DICOM ECG)",
        "record": record.summary(),
        "acceptable": is_acceptable(issues),
        "quality": [issue.to_dict() for issue in issues],
    }


def synthetic_ptbxl(out: Path, context: dict[str, Any], records: int, seed: int) -> StepResult:
    from mayo_dx.ecg import load_ptbxl, write_ptbxl_like

    folder = out / "data" / "ptbxl_synthetic"
    marker = folder / f".complete-{records}-{seed}"
    if not marker.exists():
        shutil.rmtree(folder, ignore_errors=True)
        write_ptbxl_like(folder, records, seed=seed, sampling_rates=(100,))
        marker.touch()
    dataset = load_ptbxl(folder, "superdiagnostic", sampling_rate=100)
    context["dataset"] = dataset
    return {"folder": str(folder), **dataset.summary()}


def preprocess_records(out: Path, context: dict[str, Any]) -> StepResult:
    from mayo_dx.ecg import EcgPreprocessing, preprocess, read_wfdb

    dataset = context["dataset"]
    params = EcgPreprocessing(target_fs=100, highpass_hz=0.5, normalisation="per_record")
    train_ids = dataset.splits["train"][:8]
    arrays = [preprocess(read_wfdb(dataset.record_path(int(ecg_id))), params) for ecg_id in train_ids]
    real = preprocess(context["real_record"], params)
    stacked = np.stack(arrays)
    return {
        "parameters": params.to_dict(),
        "synthetic_batch_shape": list(stacked.shape),
        "real_ecg_shape": list(real.shape),
        "finite": bool(np.isfinite(stacked).all() and np.isfinite(real).all()),
    }


def abstention(out: Path, context: dict[str, Any]) -> StepResult:
    from mayo_dx.ecg import check_quality, is_acceptable
    from mayo_dx.results import Abstention

    record = context["real_record"]
    signal = np.array(record.signal, copy=True)
    lead = record.leads.index("V2")
    signal[lead] = 0.0  # a lead that came off
    burst = np.random.default_rng(0).normal(scale=2.0, size=signal.shape[1] // 4)
    signal[record.leads.index("II"), : burst.size] += burst  # muscle noise
    corrupted = replace(record, signal=signal.astype(np.float32))
    issues = check_quality(corrupted)
    rejecting = tuple(issue for issue in issues if issue.severity == "reject")
    result: StepResult = {"acceptable": is_acceptable(issues), "issues": [issue.to_dict() for issue in issues]}
    if rejecting:
        result["abstention"] = Abstention(reasons=rejecting, model="demo").to_dict()
    return result


def ct_phantom(out: Path, context: dict[str, Any], seed: int) -> StepResult:
    from mayo_dx.imaging import generate_phantom, measure_labels, read_series, write_phantom_dicom

    phantom = generate_phantom(shape=(48, 128, 128), lesions=1, seed=seed)
    folder = out / "data" / "ct_phantom_dicom"
    shutil.rmtree(folder, ignore_errors=True)
    files = write_phantom_dicom(phantom, folder, uid_seed=f"mayo-dx-demo-{seed}")
    volume = read_series(folder)
    same = bool(np.array_equal(np.asarray(volume.hu), np.asarray(phantom.volume.hu)))
    measurement = measure_labels(phantom.labels, volume)
    return {
        "folder": str(folder),
        "files": len(files),
        "volume": {"shape": list(volume.shape), "spacing_mm": list(volume.spacing)},
        "hu_round_trip_exact": same,
        "measurement": measurement.to_dict(),
        "truth": {
            "gland_volume_ml": round(phantom.truth.gland_volume_ml, 2),
            "lesions": [lesion.to_dict() for lesion in phantom.truth.lesions],
        },
    }
