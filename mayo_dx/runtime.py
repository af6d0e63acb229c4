"""The torch-free runtime: ``load(artifact) -> Predictor``, onnxruntime sessions built from the card.

Runtime layer: imports numpy and onnxruntime only (never torch, lightning, monai or onnx). The
artifact is verified on load (:func:`mayo_dx.artifact.read_artifact`: graph and card hashes,
truncation); nothing is ever unpickled.

Session options (all settable; defaults chosen for reproducible batch work):

* ``threads`` -> ``intra_op_num_threads`` (threads inside one operator). Default ``None`` lets
  onnxruntime use one thread per physical core. For many predictors in one machine (Ray,
  Spark, a thread pool) set ``threads=1`` and parallelise across inputs instead.
* ``inter_op_num_threads = 1`` and ``execution_mode = ORT_SEQUENTIAL``: the networks are
  chains; parallel operator scheduling only adds threads.
* ``graph_optimization_level = ORT_ENABLE_ALL`` (constant folding, conv+bn fusion, layout).
* ``use_deterministic_compute = True``.
* ``enable_cpu_mem_arena = False``: memory is returned after each run instead of kept in a
  growing arena; on a 512 x 512 x 200 CT study this takes peak RSS from 3.2 GB to 1.4 GB for
  about 2 s more (``benchmarks/RESULTS.md``). Pass ``{"enable_cpu_mem_arena": True}`` for speed.
* ``session_options`` overrides any attribute of ``onnxruntime.SessionOptions`` by name (enum
  members by name, e.g. ``{"graph_optimization_level": "ORT_ENABLE_BASIC"}``), plus
  ``{"config_entries": {key: value}}`` for ``add_session_config_entry``. It is a plain mapping
  so the predictor stays picklable.

With the same artifact, inputs, thread count and machine, results are bitwise identical run to
run. A :class:`Predictor` is thread-safe (``InferenceSession.run`` may be called concurrently;
the predictor holds no other mutable state) and picklable: it pickles as (path, options,
artifact SHA-256) and rebuilds its sessions on unpickle, refusing a file that changed.

Example:
    >>> predictor = load("models/ecg_xresnet1d101.onnx", threads=1)  # doctest: +SKIP
    >>> predictor.predict("../shared/data/ecg/ptbxl/00001_lr.hea").positive_labels  # doctest: +SKIP
    ('NORM',)
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping

import numpy as np
import onnxruntime

from mayo_dx.artifact import Artifact, read_artifact
from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError, MayoDxError
from mayo_dx.parallel import bounded_map
from mayo_dx.results import Abstention, Diagnosis

__all__ = ["PREDICTORS", "Predictor", "load", "session_options"]

#: Task -> ``"module:Class"`` of its predictor, imported on first use.
PREDICTORS: dict[str, str] = {
    "ecg": "mayo_dx.runtime_ecg:EcgPredictor",
    "ct": "mayo_dx.runtime_ct:CtPredictor",
}

_ENUMS = {"graph_optimization_level": onnxruntime.GraphOptimizationLevel, "execution_mode": onnxruntime.ExecutionMode}


def session_options(threads: int | None = None, overrides: Mapping[str, Any] | None = None) -> onnxruntime.SessionOptions:
    """Build the ``onnxruntime.SessionOptions`` described in the module docstring.

    Args:
        threads: ``intra_op_num_threads``; ``None`` or 0 for onnxruntime's default.
        overrides: Attribute name -> value (enum members by name), and ``config_entries``.

    Raises:
        ValueError: Unknown attribute, or a negative thread count.

    Example:
        >>> session_options(2, {"graph_optimization_level": "ORT_ENABLE_BASIC"}).intra_op_num_threads
        2
    """
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be positive or None, got {threads}")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(threads or 0)
    options.inter_op_num_threads = 1
    options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.use_deterministic_compute = True
    options.enable_cpu_mem_arena = False
    options.log_severity_level = 3
    for name, value in dict(overrides or {}).items():
        if name == "config_entries":
            for key, entry in dict(value).items():
                options.add_session_config_entry(str(key), str(entry))
            continue
        if name.startswith("_") or not hasattr(options, name) or callable(getattr(options, name)):
            raise ValueError(f"unknown onnxruntime session option {name!r}")
        if name in _ENUMS and isinstance(value, str):
            value = _ENUMS[name].__members__[value]
        setattr(options, name, value)
    return options


_make_options = session_options  # the name stays free for the keyword argument below


class Predictor:
    """Base of the task predictors: a verified artifact, its card and one session per stage.

    Subclasses implement :meth:`predict` (and may batch in :meth:`predict_many`). Construct
    through :func:`load`.

    Attributes:
        card: The model card read from the artifact.
        artifact_sha256: SHA-256 of the artifact (see :mod:`mayo_dx.artifact`).
        path: Where the artifact was read from.
        threads: ``intra_op_num_threads`` given at load.
    """

    def __init__(self, artifact: Artifact, *, threads: int | None = None,
                 session_options: Mapping[str, Any] | None = None) -> None:
        self.path = artifact.path
        self.card: ModelCard = artifact.card
        self.artifact_sha256 = artifact.sha256
        self.threads = threads
        self._overrides = dict(session_options or {})
        options = _make_options(threads, self._overrides)
        self._sessions: dict[str, onnxruntime.InferenceSession] = {}
        for name, data in artifact.stages.items():
            try:
                self._sessions[name] = onnxruntime.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
                raise ArtifactError(f"{artifact.path.name}: onnxruntime cannot load stage {name!r}: {error}") from error
        self._validate()

    def _validate(self) -> None:
        """Check the card against the graphs; subclasses raise :class:`ArtifactError`."""

    @property
    def stages(self) -> tuple[str, ...]:
        """Stage names (``("model",)`` for a single-file artifact)."""
        return tuple(self._sessions)

    def session(self, stage: str = "model") -> onnxruntime.InferenceSession:
        """The onnxruntime session of one stage.

        Example:
            >>> predictor.session().get_inputs()[0].name  # doctest: +SKIP
            'signal'
        """
        try:
            return self._sessions[stage]
        except KeyError:
            raise ArtifactError(f"no stage {stage!r}; the artifact has {list(self._sessions)}") from None

    def run(self, inputs: Mapping[str, np.ndarray], stage: str = "model") -> list[np.ndarray]:
        """Run one stage on named float32 inputs; return its outputs in graph order.

        Example:
            >>> predictor.run({"signal": windows})[0].shape  # doctest: +SKIP
            (7, 5)
        """
        feeds = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in inputs.items()}
        return self.session(stage).run(None, feeds)

    def predict(self, source: Any) -> Diagnosis | Abstention:
        """Diagnose one input (a path or a typed record/volume)."""
        raise NotImplementedError

    def _predict_or_raise(self, source: Any) -> Diagnosis | Abstention:
        if isinstance(source, MayoDxError):  # an input that failed before reading (e.g. discovery)
            raise source
        return self.predict(source)

    def predict_many(self, sources: Iterable[Any], *, workers: int = 2,
                     on_error: Literal["raise", "return"] = "raise") -> Iterator[Diagnosis | Abstention | Exception]:
        """Diagnose a stream of inputs in order, reading ``workers`` at a time (bounded memory).

        Args:
            sources: Paths or typed inputs, consumed lazily.
            workers: Threads for reading and predicting.
            on_error: ``"raise"`` stops at the first failure; ``"return"`` yields the
                exception (any ``Exception``) in place of that input's result. A
                :class:`~mayo_dx.errors.MayoDxError` placed in ``sources`` stands for an input
                that already failed (e.g. in discovery) and is passed through.

        Example:
            >>> [result.kind for result in predictor.predict_many(paths)]  # doctest: +SKIP
            ['diagnosis', 'abstention']
        """
        for outcome in bounded_map(self._predict_or_raise, sources, workers=workers):
            if outcome.error is None:
                yield outcome.value
            elif on_error == "return":
                yield outcome.error
            else:
                raise outcome.error

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path), "threads": self.threads, "session_options": self._overrides,
                "artifact_sha256": self.artifact_sha256}

    def __setstate__(self, state: Mapping[str, Any]) -> None:
        artifact = read_artifact(state["path"], expected_sha256=state["artifact_sha256"])
        self.__init__(artifact, threads=state["threads"], session_options=state["session_options"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.card.name!r} {self.card.version}, sha256={self.artifact_sha256[:12]})"


def _predictor_class(task: str) -> type[Predictor]:
    target = PREDICTORS.get(task)
    if target is None:
        raise ArtifactError(f"no runtime predictor for task {task!r}; known: {sorted(PREDICTORS)}")
    module_name, class_name = target.split(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ArtifactError(f"the {task!r} predictor ({module_name}) is not part of this version") from error
    return getattr(module, class_name)


def load(path: str | Path, *, threads: int | None = None, session_options: Mapping[str, Any] | None = None,
         expected_sha256: str | None = None) -> Predictor:
    """Load a verified artifact and return the predictor for its card's task.

    Args:
        path: A ``.onnx`` artifact, an artifact folder (``manifest.json``), or the name of a
            model in the default models folder (:func:`mayo_dx.paths.default_models_dir`).
        threads: onnxruntime ``intra_op_num_threads`` (``None``: one per physical core).
        session_options: Overrides of onnxruntime session options (see module docstring).
        expected_sha256: Refuse the artifact unless its SHA-256 equals this pin.

    Returns:
        A :class:`Predictor` (for ECG: :class:`mayo_dx.runtime_ecg.EcgPredictor`).

    Raises:
        ArtifactError: Missing, truncated or tampered artifact; card and graph disagree; no
            predictor for the task.

    Example:
        >>> load("models/ecg_xresnet1d101.onnx").card.task  # doctest: +SKIP
        'ecg'
    """
    if not Path(path).exists() and Path(path).name == str(path):  # a bare name: look in the models folder
        from mayo_dx.errors import ModelNotFound
        from mayo_dx.models_folder import resolve_artifact

        try:
            path = resolve_artifact(path)
        except ModelNotFound as error:
            raise ArtifactError(str(error)) from None
    artifact = read_artifact(path, expected_sha256=expected_sha256)
    return _predictor_class(artifact.card.task)(artifact, threads=threads, session_options=session_options)
