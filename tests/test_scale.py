"""Scale-out: the Predictor through pickle and threads, BatchPredictor, Ray Data on a local cluster."""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pytest
import torch

from mayo_dx.ecg.synthetic import generate_ecg
from mayo_dx.ecg.synthetic_ptbxl import write_ptbxl_like
from mayo_dx.errors import InputError, MissingDependency
from mayo_dx.runtime import load
from mayo_dx.runtime_ecg import EcgPredictor
from mayo_dx.scale import BatchPredictor, flatten_result, predict_with_ray, worker_predictor
from tests.conftest import PROJECT_ROOT
from tests.export.tiny import export_tiny_ecg

torch.set_num_threads(1)
N_RECORDS = 240
# Ray Data 2.60 warns about its own deprecated DataContext fields when it copies the context.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.*")


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_ecg(tmp_path_factory.mktemp("scale_artifact") / "tiny_ecg.onnx")


@pytest.fixture(scope="module")
def predictor(artifact: Path) -> EcgPredictor:
    loaded = load(artifact, threads=1)
    assert isinstance(loaded, EcgPredictor)
    return loaded


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """PTB-XL-like 100 Hz records, plus a flat-line record, a missing one and a corrupt one."""
    import wfdb

    folder = write_ptbxl_like(tmp_path_factory.mktemp("scale_ptbxl") / "ptbxl", N_RECORDS, seed=0,
                              sampling_rates=(100,))
    table = pd.read_csv(folder / "ptbxl_database.csv")
    paths = [str(folder / f"{name}.hea") for name in table["filename_lr"]]
    extra = folder / "extra"
    extra.mkdir()
    flat = np.round(np.array(generate_ecg(("NORM",), fs=100.0, seed=1).signal).T * 1000).astype(np.int16)
    flat[:, 2] = 0  # lead III flat: the predictor abstains
    leads = ["I", "II", "III", "AVR", "AVL", "AVF", "V1", "V2", "V3", "V4", "V5", "V6"]
    wfdb.wrsamp("flat", fs=100.0, units=["mV"] * 12, sig_name=leads, d_signal=flat, fmt=["16"] * 12,
                adc_gain=[1000.0] * 12, baseline=[0] * 12, write_dir=str(extra))
    (extra / "corrupt.hea").write_text("not a header at all\n")
    return paths + [str(extra / "flat.hea"), str(extra / "missing.hea"), str(extra / "corrupt.hea")]


def _ray_missing() -> bool:
    """Whether Ray is absent, found without importing it (Ray reads its auth mode on import)."""
    try:
        return importlib.util.find_spec("ray") is None
    except (ImportError, ValueError):  # ValueError: sys.modules["ray"] is None
        return True


def _single(predictor: EcgPredictor, path: str) -> Any:
    try:
        return predictor.predict(path)
    except Exception as error:  # noqa: BLE001 - the error is the expected result for bad inputs
        return error


def _assert_same(row: dict[str, Any], expected: Any, labels: tuple[str, ...]) -> None:
    """A flat result row equals the single-process result (probabilities to float32 precision)."""
    reference = flatten_result(expected, labels)
    assert row["kind"] == reference["kind"] and row["error"] == reference["error"]
    assert json.loads(row["positive_labels"]) == json.loads(reference["positive_labels"])
    got, want = json.loads(row["result"]), json.loads(reference["result"])
    got_probabilities = [finding.pop("probability") for finding in got.get("findings", [])]
    want_probabilities = [finding.pop("probability") for finding in want.get("findings", [])]
    np.testing.assert_allclose(got_probabilities, want_probabilities, rtol=1e-6, atol=1e-7)
    assert got == want
    columns = [f"probability_{label}" for label in labels]
    np.testing.assert_allclose([row[c] for c in columns], [reference[c] for c in columns], rtol=1e-6, atol=1e-7)


def test_predictor_through_pickle_and_four_threads_is_identical(predictor: EcgPredictor, inputs: list[str]) -> None:
    sample = inputs[:24] + inputs[-3:]
    single = [flatten_result(_single(predictor, path), predictor.card.label_names) for path in sample]
    clone = pickle.loads(pickle.dumps(predictor))
    assert clone is not predictor and clone.artifact_sha256 == predictor.artifact_sha256

    def run(path: str) -> dict[str, Any]:
        return flatten_result(_single(clone, path), clone.card.label_names)

    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, sample * 3))
    assert json.dumps(threaded) == json.dumps(single * 3)  # bitwise (NaN for abstentions and errors)
    assert [row["kind"] for row in single[-3:]] == ["abstention", "error", "error"]


def test_batch_predictor_pandas_paths_signal_rows_and_row_errors(artifact: Path, predictor: EcgPredictor,
                                                                 inputs: list[str]) -> None:
    batch_predictor = pickle.loads(pickle.dumps(BatchPredictor(artifact)))
    labels = predictor.card.label_names
    frame = pd.DataFrame({"id": np.arange(6), "path": inputs[:3] + inputs[-3:]})  # as Spark's mapInPandas gives
    output = batch_predictor(frame)
    assert list(output)[:2] == ["id", "path"] and output["id"].tolist() == list(range(6))
    for index, path in enumerate(frame["path"]):
        _assert_same({column: values[index] for column, values in output.items()}, _single(predictor, path), labels)

    good = generate_ecg(("MI",), fs=500.0, seed=7)
    flat = np.array(generate_ecg(("NORM",), fs=500.0, seed=8).signal)
    flat[4] = 0.0
    signals = np.empty(3, dtype=object)
    signals[:] = [np.array(good.signal), np.zeros((11, 5000), np.float32), flat]
    output = batch_predictor({"signal": signals, "fs": np.array([500.0, 500.0, 500.0])})
    assert "signal" not in output and output["kind"].tolist() == ["diagnosis", "error", "abstention"]
    _assert_same({column: values[0] for column, values in output.items()}, predictor.predict(good), labels)
    assert "not a 12-lead signal" in json.loads(output["result"][1])["reason"]
    assert np.isnan(output[f"probability_{labels[0]}"][1:]).all()
    uniform = batch_predictor({"signal": np.stack([good.signal, flat]), "fs": np.array([500.0, 500.0])})
    assert uniform["kind"].tolist() == ["diagnosis", "abstention"]
    assert uniform["result"][0] == output["result"][0]
    shuffled = pd.DataFrame({"signal": list(signals[::-1]), "fs": [500.0] * 3}, index=[7, 3, 5])  # positional rows
    assert batch_predictor(shuffled)["result"].tolist() == output["result"].tolist()[::-1]
    with pytest.raises(InputError, match="'path' column"):
        batch_predictor({"id": np.arange(2)})
    with pytest.raises(InputError, match="clash"):
        batch_predictor({"path": np.array(inputs[:1]), "kind": np.array(["x"])})


def test_worker_predictor_is_one_per_process_and_artifact(artifact: Path, predictor: EcgPredictor) -> None:
    first = worker_predictor(artifact, expected_sha256=predictor.artifact_sha256)
    assert worker_predictor(artifact, expected_sha256=predictor.artifact_sha256) is first
    assert worker_predictor(artifact, threads=2) is not first
    assert first.predictor.artifact_sha256 == predictor.artifact_sha256


def test_missing_ray_gives_the_install_hint(artifact: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(MissingDependency, match=r'pip install "mayo-dx\[scale\]"'):
        predict_with_ray(artifact, ["a.hea"])


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """A local 2-CPU Ray cluster whose files all live in one short temporary folder."""
    patch = pytest.MonkeyPatch()
    # Token auth stays on, with the token in the environment instead of ~/.ray/auth_token. Ray
    # reads the mode when it is imported, so the variables are set before the import.
    patch.setenv("RAY_AUTH_MODE", "token")
    patch.setenv("RAY_AUTH_TOKEN", secrets.token_hex(32))
    patch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    try:
        ray = pytest.importorskip("ray", reason='Ray is not installed (pip install "mayo-dx[scale]")')
        pytest.importorskip("ray.data", reason='Ray Data is not installed (pip install "mayo-dx[scale]")')
    except BaseException:
        patch.undo()
        raise
    # Sockets live under the temp dir and Unix socket paths are limited to ~107 bytes: keep it short.
    temp_dir = tempfile.mkdtemp(prefix="mdxray", dir="/tmp" if Path("/tmp").is_dir() else None)
    home_ray = Path.home() / ".ray"
    home_ray_existed = home_ray.exists()
    context = ray.data.DataContext.get_current()
    progress = context.enable_progress_bars
    try:
        ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp_dir, object_store_memory=100 * 1024**2,
                 log_to_driver=False)
        context.enable_progress_bars = False
        yield ray
    finally:
        context.enable_progress_bars = progress
        ray.shutdown()
        patch.undo()
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert home_ray_existed or not home_ray.exists(), "Ray wrote ~/.ray during the test"


def test_ray_data_map_batches_equals_single_process(ray_cluster: Any, artifact: Path, predictor: EcgPredictor,
                                                    inputs: list[str]) -> None:
    ray = ray_cluster
    dataset = ray.data.from_items([{"path": path} for path in inputs], override_num_blocks=16)
    mapped = dataset.map_batches(BatchPredictor, fn_constructor_args=(str(artifact),),
                                 fn_constructor_kwargs={"expected_sha256": predictor.artifact_sha256},
                                 batch_size=16, compute=ray.data.ActorPoolStrategy(size=2), num_cpus=1,
                                 batch_format="numpy")
    rows = sorted(mapped.take_all(), key=lambda row: row["path"])
    assert [row["path"] for row in rows] == sorted(inputs)
    labels = predictor.card.label_names
    for row in rows:
        _assert_same(row, _single(predictor, row["path"]), labels)
    kinds = [row["kind"] for row in rows]
    assert kinds.count("diagnosis") == N_RECORDS and kinds.count("abstention") == 1 and kinds.count("error") == 2
    assert len({row["positive_labels"] for row in rows}) > 1  # not one constant answer


def test_predict_with_ray_keeps_input_order(ray_cluster: Any, artifact: Path, predictor: EcgPredictor,
                                            inputs: list[str]) -> None:
    cwd = Path(inputs[0]).parents[2]
    given = [os.path.relpath(path, cwd) for path in reversed(inputs[-40:])]
    previous = Path.cwd()
    os.chdir(cwd)
    try:
        rows = predict_with_ray(artifact, given, num_cpus=2, batch_size=8)
    finally:
        os.chdir(previous)
    assert [row["input"] for row in rows] == given
    assert ray_cluster.is_initialized()  # a running cluster is used, not shut down
    for row, path in zip(rows, reversed(inputs[-40:])):
        _assert_same(row, _single(predictor, path), predictor.card.label_names)


def test_predict_with_ray_starts_and_stops_a_torch_free_local_cluster(artifact: Path, predictor: EcgPredictor,
                                                                      inputs: list[str]) -> None:
    if _ray_missing():
        pytest.skip('Ray is not installed (pip install "mayo-dx[scale]")')
    temp_dir = tempfile.mkdtemp(prefix="mdxray", dir="/tmp" if Path("/tmp").is_dir() else None)
    sample = inputs[:6] + inputs[-2:]
    code = (
        "import json, sys\n"
        "import ray\n"
        "from mayo_dx.scale import predict_with_ray\n"
        f"rows = predict_with_ray({str(artifact)!r}, {sample!r}, num_cpus=2, batch_size=4,\n"
        f"    ray_init_kwargs={{'_temp_dir': {temp_dir!r}, 'object_store_memory': 100 * 1024**2,\n"
        "                     'log_to_driver': False})\n"
        "assert not ray.is_initialized()\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'lightning', 'monai', 'onnx'))\n"
        "print(json.dumps({'rows': rows, 'leaked': leaked}))\n"
    )
    environment = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32),
                   "RAY_USAGE_STATS_ENABLED": "0"}
    try:
        result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=PROJECT_ROOT,
                                env=environment, check=False, timeout=120)
    finally:
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert result.returncode == 0, result.stderr[-3000:]
    output = json.loads(result.stdout.strip().splitlines()[-1])
    assert output["leaked"] == []
    assert [row["input"] for row in output["rows"]] == sample
    for row, path in zip(output["rows"], sample):
        expected = flatten_result(_single(predictor, path), predictor.card.label_names)
        assert (row["kind"], row["result"]) == (expected["kind"], expected["result"])
