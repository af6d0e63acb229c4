"""The torch-free runtime: verified loading, ECG prediction, batch CLI, determinism, pickling."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

from mayo_dx.calibration import apply_temperature
from mayo_dx.cli import main
from mayo_dx.ecg.io import read
from mayo_dx.ecg.record import EcgRecord
from mayo_dx.ecg.signal import EcgPreprocessing, preprocess, sliding_windows
from mayo_dx.ecg.synthetic import generate_ecg
from mayo_dx.errors import ArtifactError, InputError
from mayo_dx.results import Abstention, Diagnosis
from mayo_dx.runtime import load
from mayo_dx.runtime_ecg import EcgPredictor
from tests.conftest import PROJECT_ROOT, SHARED_DATA
from tests.export.tiny import TinyEcgNet, ecg_card, export_tiny_ecg

torch.set_num_threads(1)
FORBIDDEN = ("torch", "lightning", "pytorch_lightning", "monai", "torchvision", "torchmetrics", "onnx")


@pytest.fixture(scope="module")
def net() -> TinyEcgNet:
    return TinyEcgNet().eval()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory, net: TinyEcgNet) -> Path:
    return export_tiny_ecg(tmp_path_factory.mktemp("artifact") / "tiny_ecg.onnx", net=net)


@pytest.fixture(scope="module")
def predictor(artifact: Path) -> EcgPredictor:
    loaded = load(artifact, threads=1)
    assert isinstance(loaded, EcgPredictor)
    return loaded


def _records() -> list[EcgRecord]:
    return [generate_ecg((label,), fs=500.0, seed=index) for index, label in enumerate(("NORM", "MI", "CD", "HYP"))]


def test_load_round_trips_the_card(predictor: EcgPredictor, artifact: Path) -> None:
    assert predictor.card.label_names == ecg_card().label_names
    assert predictor.card.thresholds == ecg_card().thresholds
    assert predictor.artifact_sha256 == __import__("hashlib").sha256(artifact.read_bytes()).hexdigest()


def test_prediction_matches_torch_end_to_end(predictor: EcgPredictor, net: TinyEcgNet, waveform_ecg_path: Path) -> None:
    card = predictor.card
    record = read(waveform_ecg_path)
    windows = sliding_windows(preprocess(record, EcgPreprocessing.from_dict(card.preprocessing)), 250, 125)
    with torch.no_grad():
        logits = net(torch.from_numpy(np.ascontiguousarray(windows, dtype=np.float32))).numpy()
    expected = apply_temperature(logits.max(axis=0)[None], card.calibration["temperature"])[0]
    diagnosis = predictor.predict(waveform_ecg_path)
    assert isinstance(diagnosis, Diagnosis) and diagnosis.artifact_sha256 == predictor.artifact_sha256
    np.testing.assert_allclose([f.probability for f in diagnosis.findings], expected, atol=1e-5)
    assert [f.code for f in diagnosis.findings] == ["NORM", "MI", "STTC", "CD", "HYP"]
    assert 40 < diagnosis.measurements["heart_rate_bpm"] < 120


def _tampered(artifact: Path, tmp_path: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    data = bytearray(artifact.read_bytes())
    edit(data)
    target = tmp_path / "tampered.onnx"
    target.write_bytes(bytes(data))
    return target


def test_tampered_weights_card_and_truncation_refused(artifact: Path, net: TinyEcgNet, tmp_path: Path) -> None:
    weight = net.head.weight.detach().numpy().astype(np.float32).tobytes()[:16]
    data = artifact.read_bytes()
    assert data.count(weight) == 1

    def flip_weight(buffer: bytearray) -> None:
        position = data.index(weight)
        buffer[position : position + 4] = np.float32(0.123).tobytes()

    with pytest.raises(ArtifactError, match="graph .* does not match"):
        load(_tampered(artifact, tmp_path, flip_weight))

    def edit_card(buffer: bytearray) -> None:
        position = data.index(b'"tiny_ecg"')
        buffer[position : position + 10] = b'"tiny_ecX"'

    with pytest.raises(ArtifactError, match="model card does not match"):
        load(_tampered(artifact, tmp_path, edit_card))
    for keep in (len(data) - 7, len(data) // 2, 3):
        (tmp_path / "short.onnx").write_bytes(data[:keep])
        with pytest.raises(ArtifactError):
            load(tmp_path / "short.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    for bad in (tmp_path / "empty.onnx", tmp_path / "missing.onnx"):
        with pytest.raises(ArtifactError):
            load(bad)
    with pytest.raises(ArtifactError, match="expected"):
        load(artifact, expected_sha256="f" * 64)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_plain_onnx_without_card_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.onnx"
    with torch.no_grad():
        torch.onnx.export(TinyEcgNet().eval(), (torch.zeros(1, 12, 250),), str(path), input_names=["signal"],
                          output_names=["logits"], opset_version=17, dynamo=False)
    with pytest.raises(ArtifactError, match="not a mayo-dx artifact"):
        load(path)


def test_fresh_interpreter_runtime_leaves_torch_out(artifact: Path, waveform_ecg_path: Path) -> None:
    code = (
        "import json, sys\n"
        "import mayo_dx.runtime, mayo_dx.runtime_batch, mayo_dx.cli\n"
        f"result = mayo_dx.runtime.load({str(artifact)!r}, threads=1).predict({str(waveform_ecg_path)!r})\n"
        "assert result.kind == 'diagnosis', result\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                            check=False, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []


def test_flat_line_record_abstains(predictor: EcgPredictor) -> None:
    signal = np.array(generate_ecg(("NORM",), fs=500.0, seed=3).signal)
    signal[1] = 0.0
    result = predictor.predict(EcgRecord(signal=signal, fs=500.0))
    assert isinstance(result, Abstention)
    assert [(reason.code, reason.lead) for reason in result.reasons] == [("flat_line", "II")]
    assert isinstance(predictor.predict(EcgRecord(signal=np.zeros((12, 5000)), fs=500.0)), Abstention)
    with pytest.raises(InputError):
        predictor.saliency(EcgRecord(signal=signal, fs=500.0))


def test_deterministic_batched_threaded_and_picklable(predictor: EcgPredictor) -> None:
    records = _records()
    single = [predictor.predict(record).to_dict() for record in records]
    assert single == [predictor.predict(record).to_dict() for record in records]
    batched = [result.to_dict() for result in predictor.predict_many(records, workers=2, batch_windows=10)]
    assert batched == single
    with ThreadPoolExecutor(4) as pool:
        assert [result.to_dict() for result in pool.map(predictor.predict, records * 3)] == single * 3
    clone = pickle.loads(pickle.dumps(predictor))
    assert clone is not predictor and [clone.predict(record).to_dict() for record in records] == single


def test_unpickle_refuses_a_changed_file(artifact: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.onnx"
    shutil.copyfile(artifact, copy)
    payload = pickle.dumps(load(copy, threads=1))
    export_tiny_ecg(copy, net=TinyEcgNet(seed=5))
    with pytest.raises(ArtifactError, match="expected"):
        pickle.loads(payload)


def test_saliency_follows_the_only_lead_the_network_sees(tmp_path: Path) -> None:
    blind = TinyEcgNet().eval()
    with torch.no_grad():
        keep = blind.features[0].weight[:, 6].clone()
        blind.features[0].weight.zero_()
        blind.features[0].weight[:, 6] = keep  # only lead V1 reaches the output
    predictor = load(export_tiny_ecg(tmp_path / "blind.onnx", net=blind), threads=1)
    record = generate_ecg(("MI",), fs=500.0, seed=4)
    saliency = predictor.saliency(record, label="MI", occlusion_s=0.5)
    assert saliency.shape == (12, 1000) and saliency.dtype == np.float32
    assert np.all(np.delete(saliency, 6, axis=0) == 0) and np.abs(saliency[6]).max() > 0


def _write_wfdb(folder: Path, name: str, record: EcgRecord) -> None:
    import wfdb

    digital = np.round(np.asarray(record.signal, dtype=np.float64).T * 1000).astype(np.int16)
    wfdb.wrsamp(name, fs=record.fs, units=["mV"] * 12, sig_name=list(record.leads), d_signal=digital,
                fmt=["16"] * 12, adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(folder))


def test_predict_cli_folder_with_a_corrupted_file(artifact: Path, tmp_path: Path, waveform_ecg_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "inputs"
    (folder / "nested").mkdir(parents=True)
    for index, record in enumerate(_records()[:3]):
        _write_wfdb(folder / "nested" if index else folder, f"rec{index}", record)
    shutil.copyfile(waveform_ecg_path, folder / "ecg.dcm")
    corrupt = waveform_ecg_path.read_bytes()
    (folder / "broken.dcm").write_bytes(corrupt[: len(corrupt) // 3])
    flat = np.array(_records()[0].signal)
    flat[4] = 0.0
    _write_wfdb(folder, "flat", EcgRecord(signal=flat, fs=500.0))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results.jsonl"
    status = main(["predict", str(artifact), "inputs", "--out", str(out), "--no-progress", "--workers", "2"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == 1
    assert [line["input"] for line in lines] == ["inputs/broken.dcm", "inputs/ecg.dcm", "inputs/flat.hea",
                                                 "inputs/rec0.hea", "inputs/nested/rec1.hea", "inputs/nested/rec2.hea"]
    kinds = {line["input"]: line["kind"] for line in lines}
    assert kinds.pop("inputs/broken.dcm") == "error" and kinds.pop("inputs/flat.hea") == "abstention"
    assert set(kinds.values()) == {"diagnosis"}
    assert lines[0]["error"] == "UnreadableFile"
    (tmp_path / "list.csv").write_text("id,path\n1,inputs/rec0.hea\n2,inputs/missing.hea\n")
    status = main(["predict", str(artifact), "list.csv", "--out", str(out), "--no-progress"])
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert status == 1 and [(line["input"], line["kind"]) for line in lines] == [
        ("inputs/rec0.hea", "diagnosis"), ("inputs/missing.hea", "error")]


def test_heart_rate_on_real_labelled_records() -> None:
    from mayo_dx.ecg.heart_rate import estimate_heart_rate

    folder = SHARED_DATA / "ecg" / "cinc2021"
    if not folder.is_dir():
        pytest.skip(f"real CinC 2021 records not present: {folder}")
    tachycardia, bradycardia = "427084000", "426177001"  # SNOMED CT sinus tachycardia/bradycardia
    checked = 0
    for header in sorted(folder.glob("E075*.hea")) + sorted(folder.glob("HR0600*.hea")):
        codes = next(line for line in header.read_text().splitlines() if "Dx:" in line)
        rate = estimate_heart_rate(read(header))
        if tachycardia in codes:
            assert rate is not None and rate.bpm > 100, header.name
            checked += 1
        if bradycardia in codes:
            assert rate is not None and rate.bpm < 60, header.name
            checked += 1
    assert checked >= 6


def test_export_cli_uses_load_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    import types

    fake = types.ModuleType("mayo_dx.training.checkpoint")
    seen: list[Path] = []

    def load_trained(path: Path) -> tuple[TinyEcgNet, object]:
        seen.append(path)
        return TinyEcgNet().eval(), ecg_card()

    fake.load_trained = load_trained  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mayo_dx.training.checkpoint", fake)
    output = tmp_path / "exported.onnx"
    assert main(["export", str(tmp_path / "best.ckpt"), "-o", str(output), "--generated", "1"]) == 0
    assert seen == [tmp_path / "best.ckpt"] and json.loads(capsys.readouterr().out)["artifact"] == str(output)
    parity = load(output).card.extra["export"]["parity"]
    assert parity["inputs"] >= 4 and parity["max_abs_diff"] <= 1e-4  # pydicom's DICOM ECG + 1 generated, x2


def test_ct_discovery_gives_one_input_per_series_folder_and_nifti(tmp_path: Path) -> None:
    from mayo_dx.runtime_batch import discover_inputs

    for series in ("study_a/series_1", "study_b"):
        (tmp_path / series).mkdir(parents=True)
        for number in range(3):
            (tmp_path / series / f"slice_{number}.dcm").write_bytes(b"")
    (tmp_path / "volume.nii.gz").write_bytes(b"")
    (tmp_path / "study_b" / "nested").mkdir()
    (tmp_path / "study_b" / "nested" / "x.dcm").write_bytes(b"")
    names = sorted(item.name for item in discover_inputs([tmp_path], task="ct"))
    assert names == sorted([str(tmp_path / "study_a" / "series_1"), str(tmp_path / "study_b"),
                            str(tmp_path / "volume.nii.gz")])
    ecg_names = [item.name for item in discover_inputs([tmp_path], task="ecg")]
    assert len(ecg_names) == 7  # every .dcm file is one ECG input
