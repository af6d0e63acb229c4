"""Scale-out: one artifact, many processes, through Ray Data (tested) or Spark (same callable).

Runtime layer: numpy and the runtime only; Ray is imported lazily, inside
:func:`predict_with_ray`, and a missing Ray raises :class:`~mayo_dx.errors.MissingDependency`
with the hint ``pip install "mayo-dx[scale]"``.

A :class:`~mayo_dx.runtime.Predictor` is picklable (it pickles as artifact path, options and
SHA-256, and re-verifies the file on unpickle) and thread-safe, so engines can ship it. The
cheaper pattern is to ship only the artifact *path* and build one predictor per worker
process: :class:`BatchPredictor` is that per-worker object. It is a callable class taking a
batch of columns (a dict of numpy arrays, as Ray Data's ``batch_format="numpy"`` gives, or a
pandas ``DataFrame``, as Spark's ``mapInPandas`` gives) and returning flat result columns:

* input columns are passed through, except ``signal`` (the samples, large);
* ``kind``: ``"diagnosis"``, ``"abstention"`` or ``"error"``;
* ``error``: the error class name (``""`` unless ``kind == "error"``);
* ``result``: the whole result as JSON text (``Diagnosis.to_dict()``,
  ``Abstention.to_dict()``, or ``{"kind": "error", "error": ..., "reason": ...}`` as in
  ``mayo-dx predict`` JSON lines);
* ``positive_labels``: JSON list of the labels at or above their thresholds (``"[]"`` unless
  a diagnosis);
* ``probability_<label>``: calibrated probability per card label (NaN unless a diagnosis).

A row is either a file (column ``path``: an ECG file or WFDB record, or a CT series for a CT
artifact) or, for an ECG artifact, an array (``signal`` ``[12, samples]`` in mV, standard lead
order, and ``fs`` in Hz). A row that fails becomes an ``"error"`` row; it never fails the batch.

Ray Data, one predictor per actor, each actor one CPU and one onnxruntime thread::

    dataset = ray.data.from_items([{"path": p} for p in paths])
    results = dataset.map_batches(BatchPredictor, fn_constructor_args=(artifact_path,),
                                  batch_size=16, compute=ray.data.ActorPoolStrategy(size=4),
                                  num_cpus=1, batch_format="numpy")

(Ray < 2.51 spells the pool ``concurrency=4``.) The artifact path must be readable from
every node; the result is the same as ``predictor.predict`` in one process (tested).

Spark: ``df.mapInPandas(function, schema)`` where ``function`` takes
``predictor = worker_predictor(path, expected_sha256=pin)`` (one per Python worker process)
and yields ``pandas.DataFrame(predictor(frame))`` per frame; :func:`result_columns` gives
the schema of the added columns.

Example:
    >>> from mayo_dx.results import Finding, Diagnosis
    >>> diagnosis = Diagnosis("demo", "1", findings=(Finding("MI", 0.75, 0.5),))
    >>> flatten_result(diagnosis, ("MI",))["probability_MI"]
    0.75
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from mayo_dx.artifact import read_artifact
from mayo_dx.ecg.record import EcgRecord
from mayo_dx.errors import InputError, MissingDependency
from mayo_dx.results import Abstention, Diagnosis
from mayo_dx.runtime import load

__all__ = [
    "BatchPredictor",
    "SCALE_HINT",
    "flatten_result",
    "predict_with_ray",
    "result_columns",
    "worker_predictor",
]

#: The one-line install hint for the Ray helpers.
SCALE_HINT = 'Ray is needed for this: pip install "mayo-dx[scale]"'

_RESERVED = ("kind", "error", "result", "positive_labels")


def result_columns(label_names: Sequence[str]) -> dict[str, str]:
    """Names and types (``"string"``/``"double"``) of the columns a batch gains, in order.

    Useful for a Spark ``mapInPandas`` schema.

    Example:
        >>> result_columns(("NORM", "MI"))["probability_MI"]
        'double'
    """
    columns = {name: "string" for name in _RESERVED}
    columns.update({f"probability_{label}": "double" for label in label_names})
    return columns


def flatten_result(result: Diagnosis | Abstention | BaseException, label_names: Sequence[str]) -> dict[str, Any]:
    """One result (or the exception raised for that input) as flat columns.

    Args:
        result: A :class:`Diagnosis`, an :class:`Abstention` or the exception of a failed input.
        label_names: The card's labels, in order (they name the probability columns).

    Returns:
        ``kind``, ``error``, ``result`` (JSON text), ``positive_labels`` (JSON list) and
        ``probability_<label>`` (float, NaN unless a diagnosis).

    Example:
        >>> flatten_result(InputError("x.hea: no such file"), ("MI",))["error"]
        'InputError'
    """
    probabilities = {f"probability_{label}": math.nan for label in label_names}
    if isinstance(result, BaseException):
        payload = {"kind": "error", "error": type(result).__name__, "reason": str(result)}
        return {"kind": "error", "error": payload["error"], "result": json.dumps(payload, sort_keys=True),
                "positive_labels": "[]", **probabilities}
    positive: list[str] = []
    if isinstance(result, Diagnosis):
        for finding in result.findings:
            key = f"probability_{finding.label}"
            if key in probabilities:
                probabilities[key] = float(finding.probability)
        positive = list(result.positive_labels)
    return {"kind": result.kind, "error": "", "result": json.dumps(result.to_dict(), sort_keys=True),
            "positive_labels": json.dumps(positive), **probabilities}


def _blank(value: Any) -> bool:
    """A missing path: ``None``, NaN (pandas) or empty text."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value) == ""


def _signal(value: Any) -> np.ndarray:
    """A ``[12, samples]`` float32 array from a tensor cell, nested lists or arrays of arrays."""
    array = np.asarray(value)
    if array.dtype == object:
        array = np.stack([np.asarray(lead, dtype=np.float32) for lead in value])
    return np.asarray(array, dtype=np.float32)


class BatchPredictor:
    """Per-worker predictor: a batch of ``path`` (or ``signal`` + ``fs``) rows -> result columns.

    Built once per Ray actor (``map_batches(BatchPredictor, fn_constructor_args=(path,))``) or
    once per Spark Python worker (:func:`worker_predictor`); see the module docstring for the
    columns. Batches are a dict of arrays or a pandas ``DataFrame``; rows are positional.
    Thread-safe: it holds the loaded predictor and nothing mutable.

    Args:
        artifact: The ``.onnx`` artifact or artifact folder (readable on the worker).
        threads: onnxruntime threads per worker (default 1: parallelise across workers).
        expected_sha256: Refuse the artifact unless its SHA-256 equals this (pin the bytes the
            driver checked, so every worker runs the same model).
        session_options: onnxruntime session overrides (see :mod:`mayo_dx.runtime`).
        workers: Reader threads inside one batch (default 1).

    Raises:
        ArtifactError: Missing, tampered or mismatched artifact (at construction).

    Example:
        >>> BatchPredictor("models/ecg_xresnet1d101.onnx")({"path": np.array(["a.hea"])})["kind"]  # doctest: +SKIP
        array(['diagnosis'], dtype=object)
    """

    def __init__(self, artifact: str | Path, *, threads: int | None = 1, expected_sha256: str | None = None,
                 session_options: Mapping[str, Any] | None = None, workers: int = 1) -> None:
        self.predictor = load(artifact, threads=threads, session_options=session_options,
                              expected_sha256=expected_sha256)
        self.label_names: tuple[str, ...] = tuple(self.predictor.card.label_names)
        self.workers = int(workers)

    @property
    def columns(self) -> dict[str, str]:
        """The columns this predictor adds, with types (see :func:`result_columns`)."""
        return result_columns(self.label_names)

    def _sources(self, batch: Any, rows: int) -> list[Any]:
        names = list(batch.keys()) if hasattr(batch, "keys") else list(batch)
        if "path" in names:
            paths = list(batch["path"])
            return [InputError(f"row {index}: no path") if _blank(value) else str(value)
                    for index, value in enumerate(paths)]
        if "signal" not in names or "fs" not in names:
            raise InputError(f"a batch needs a 'path' column, or 'signal' and 'fs' columns; got {names}")
        signals, rates = list(batch["signal"]), list(batch["fs"])  # positional, whatever the index
        sources: list[Any] = []
        for index in range(rows):
            try:
                sources.append(EcgRecord(signal=_signal(signals[index]), fs=float(rates[index])))
            except (ValueError, TypeError) as error:
                sources.append(InputError(f"row {index}: not a 12-lead signal ({error})"))
        return sources

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Predict every row of ``batch`` and return the input columns plus the result columns.

        Raises:
            InputError: The batch has neither a ``path`` column nor ``signal`` and ``fs``, or
                an input column has the name of a result column.
        """
        names = list(batch.keys()) if hasattr(batch, "keys") else list(batch)
        clashes = sorted(set(names) & set(self.columns))
        if clashes:
            raise InputError(f"input columns {clashes} clash with result columns; rename them")
        rows = len(batch[names[0]]) if names else 0
        results = list(self.predictor.predict_many(self._sources(batch, rows), workers=self.workers,
                                                   on_error="return"))
        flat = [flatten_result(result, self.label_names) for result in results]
        output: dict[str, np.ndarray] = {name: np.asarray(batch[name]) for name in names if name != "signal"}
        for column, kind in self.columns.items():
            values = [row[column] for row in flat]
            output[column] = np.array(values, dtype=np.float64 if kind == "double" else object)
        return output


@functools.lru_cache(maxsize=4)
def _cached_predictor(artifact: str, threads: int | None, expected_sha256: str | None) -> BatchPredictor:
    return BatchPredictor(artifact, threads=threads, expected_sha256=expected_sha256)


def worker_predictor(artifact: str | Path, *, threads: int | None = 1,
                     expected_sha256: str | None = None) -> BatchPredictor:
    """The :class:`BatchPredictor` of this process for an artifact, built on first use.

    For engines that call a plain function per partition in long-lived worker processes
    (Spark's ``mapInPandas`` with Python worker reuse, Dask): the model loads once per
    process, not once per task. A closure defined on the driver cannot hold such a cache (it is
    unpickled afresh for every task); this module-level one can.

    Example:
        >>> worker_predictor("/models/ecg.onnx") is worker_predictor("/models/ecg.onnx")  # doctest: +SKIP
        True
    """
    return _cached_predictor(str(Path(artifact).absolute()), threads, expected_sha256)


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401  (the [data] part of the extra)
    except ImportError as error:
        raise MissingDependency(SCALE_HINT) from error
    return ray


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def predict_with_ray(artifact: str | Path, paths: Iterable[str | Path], *, num_cpus: int = 2, batch_size: int = 16,
                     threads: int = 1, ray_init_kwargs: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Predict files with Ray Data, one :class:`BatchPredictor` per actor; rows in input order.

    Uses the running Ray cluster, or starts a local one (``ray.init(num_cpus=num_cpus,
    include_dashboard=False, **ray_init_kwargs)``, Ray's defaults otherwise: files under
    ``/tmp/ray``, a cluster token in ``~/.ray/auth_token`` unless ``RAY_AUTH_TOKEN`` is set) and
    shuts it down afterwards. The artifact
    is verified here first and its SHA-256 pinned for every actor. All results are collected
    on the driver: for large jobs use the :class:`BatchPredictor` pattern and write the
    dataset out (e.g. ``write_parquet``) instead.

    Args:
        artifact: The artifact (readable on every node).
        paths: Input files; relative paths are resolved here, so every node must see them at
            the same absolute path.
        num_cpus: Actors (one CPU each), capped at the cluster's CPUs; also the CPUs of a
            local cluster started here.
        batch_size: Rows per batch.
        threads: onnxruntime threads per actor.
        ray_init_kwargs: Extra ``ray.init`` arguments for a local cluster (e.g. ``_temp_dir``).

    Returns:
        One dict per input: ``input`` (as given) and the columns of :func:`result_columns`.

    Raises:
        MissingDependency: Ray is not installed.
        ArtifactError: The artifact is missing or tampered.
        ValueError: ``num_cpus``, ``batch_size`` or ``threads`` below 1.

    Example:
        >>> rows = predict_with_ray("models/ecg_xresnet1d101.onnx", ["a.hea", "b.hea"])  # doctest: +SKIP
        >>> [row["kind"] for row in rows]  # doctest: +SKIP
        ['diagnosis', 'abstention']
    """
    if min(num_cpus, batch_size, threads) < 1:
        raise ValueError("num_cpus, batch_size and threads must be at least 1")
    ray = _import_ray()
    sha256 = read_artifact(artifact).sha256
    items = [{"index": index, "input": str(path), "path": str(Path(path).absolute())}
             for index, path in enumerate(paths)]
    if not items:
        return []
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=num_cpus, include_dashboard=False, **dict(ray_init_kwargs or {}))
    try:
        actors = max(1, min(num_cpus, int(ray.cluster_resources().get("CPU", 1))))
        dataset = ray.data.from_items(items, override_num_blocks=max(1, math.ceil(len(items) / batch_size)))
        mapped = dataset.map_batches(
            BatchPredictor, fn_constructor_args=(str(Path(artifact).absolute()),),
            fn_constructor_kwargs={"threads": threads, "expected_sha256": sha256}, batch_size=batch_size,
            compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1, batch_format="numpy",
        )
        rows = mapped.take_all()
    finally:
        if started:
            ray.shutdown()
    rows.sort(key=lambda row: int(row["index"]))
    return [{key: _plain(value) for key, value in row.items() if key not in ("index", "path")} for row in rows]
