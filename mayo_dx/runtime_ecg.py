"""ECG predictor: file or record -> quality -> card preprocessing -> ONNX -> calibrated findings.

Runtime layer (no torch). :class:`EcgPredictor` follows the ECG model-card contract:

1. read (:func:`mayo_dx.ecg.read`) unless an :class:`~mayo_dx.ecg.record.EcgRecord` is given;
2. :func:`~mayo_dx.ecg.quality.check_quality` with the card's limits (``input_spec["quality"]``,
   and ``input_spec["min_duration_s"]``); any ``"reject"`` issue returns an
   :class:`~mayo_dx.results.Abstention` with the reasons;
3. :func:`~mayo_dx.ecg.signal.preprocess` with ``EcgPreprocessing.from_dict(card.preprocessing)``;
4. :func:`~mayo_dx.ecg.signal.sliding_windows` with ``window_samples``/``stride_samples``,
   all windows in one onnxruntime call (``predict_many`` batches windows across records);
5. logits aggregated over windows (``input_spec["aggregation"]``: ``"max"`` or ``"mean"``);
6. :func:`~mayo_dx.calibration.apply_temperature` with ``card.calibration``;
7. one :class:`~mayo_dx.results.Finding` per label with the card's threshold and code.

The diagnosis carries the quality warnings, the heart rate (:mod:`mayo_dx.ecg.heart_rate`,
pooled over the leads without quality issues) and the artifact SHA-256.

Example:
    >>> from mayo_dx.runtime import load
    >>> predictor = load("models/ecg_xresnet1d101.onnx", threads=1)  # doctest: +SKIP
    >>> predictor.predict("../shared/data/ecg/ptbxl/00001_lr.hea").kind  # doctest: +SKIP
    'diagnosis'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

import numpy as np

from mayo_dx.calibration import apply_temperature
from mayo_dx.ecg.heart_rate import estimate_heart_rate
from mayo_dx.ecg.io import read
from mayo_dx.ecg.quality import QualityThresholds, check_quality, is_acceptable
from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord
from mayo_dx.ecg.signal import EcgPreprocessing, preprocess, sliding_windows
from mayo_dx.errors import ArtifactError, InputError, MayoDxError
from mayo_dx.parallel import bounded_map
from mayo_dx.results import Abstention, Diagnosis, Finding, QualityIssue
from mayo_dx.runtime import Predictor

__all__ = ["EcgPredictor", "PreparedEcg"]

#: Most windows sent to onnxruntime in one call by :meth:`EcgPredictor.predict_many`.
BATCH_WINDOWS = 256


@dataclass(frozen=True)
class PreparedEcg:
    """A record ready for the network.

    Attributes:
        signal: Preprocessed ``[12, samples]`` at the card's sampling rate.
        windows: ``[windows, 12, window_samples]``.
        warnings: Non-blocking quality issues.
        measurements: Heart rate and the like, measured on the raw record.

    Example:
        >>> PreparedEcg(np.zeros((12, 250)), np.zeros((1, 12, 250)), (), {}).windows.shape
        (1, 12, 250)
    """

    signal: np.ndarray
    windows: np.ndarray
    warnings: tuple[QualityIssue, ...]
    measurements: dict[str, float]


class EcgPredictor(Predictor):
    """Diagnose 12-lead ECGs with an exported ECG model (see the module docstring).

    Construct with :func:`mayo_dx.runtime.load`. Thread-safe and picklable.

    Example:
        >>> predictor.predict(record).positive_labels  # doctest: +SKIP
        ('MI',)
    """

    def _validate(self) -> None:
        card = self.card
        spec = dict(card.input_spec)
        where = f"{self.path.name}"
        if card.task != "ecg" or self.stages != ("model",):
            raise ArtifactError(f"{where}: an ECG predictor needs a single-graph artifact with task 'ecg'")
        session = self.session()
        inputs, outputs = session.get_inputs(), session.get_outputs()
        if [item.name for item in inputs] != ["signal"] or len(outputs) != 1:
            raise ArtifactError(f"{where}: an ECG graph needs one input 'signal' and one output")
        width = outputs[0].shape[-1] if outputs[0].shape else None
        if isinstance(width, int) and width != len(card.labels):
            raise ArtifactError(f"{where}: the graph gives {width} logits, the card has {len(card.labels)} labels")
        if tuple(spec.get("leads", STANDARD_LEADS)) != STANDARD_LEADS:
            raise ArtifactError(f"{where}: input_spec.leads must be the 12 standard leads in standard order")
        try:
            self._params = EcgPreprocessing.from_dict(card.preprocessing)
            self._window = int(spec["window_samples"])
            self._stride = int(spec.get("stride_samples", self._window))
            quality = dict(spec.get("quality", {}))
            if "min_duration_s" in spec:
                quality.setdefault("min_duration_s", float(spec["min_duration_s"]))
            self._quality = QualityThresholds.from_dict(quality)
        except (KeyError, TypeError, ValueError) as error:
            raise ArtifactError(f"{where}: the card's preprocessing or input_spec is invalid ({error})") from error
        rate = spec.get("sampling_rate")
        if rate is not None and self._params.target_fs is not None and float(rate) != float(self._params.target_fs):
            raise ArtifactError(f"{where}: input_spec.sampling_rate {rate} differs from preprocessing.target_fs")
        self._aggregation = str(spec.get("aggregation", "max"))
        if self._aggregation not in ("max", "mean"):
            raise ArtifactError(f"{where}: aggregation must be 'max' or 'mean', got {self._aggregation!r}")
        self._multi_label = bool(spec.get("multi_label", True))
        calibration = dict(card.calibration)
        method = calibration.get("method", "none")
        if method not in ("temperature", "none"):
            raise ArtifactError(f"{where}: unknown calibration method {method!r}")
        self._temperature = np.asarray(calibration.get("temperature", [1.0]), dtype=np.float64).ravel()
        if self._temperature.size not in (1, len(card.labels)) or not np.all(self._temperature > 0):
            raise ArtifactError(f"{where}: calibration needs 1 or {len(card.labels)} positive temperatures")
        missing = [name for name in card.label_names if name not in card.thresholds]
        if missing:
            raise ArtifactError(f"{where}: the card has no threshold for {missing}")

    @property
    def sampling_rate(self) -> float | None:
        """Sampling rate of the network's input (Hz); saliency maps use it."""
        return self._params.target_fs

    def prepare(self, source: str | Path | EcgRecord) -> PreparedEcg | Abstention:
        """Read, check and preprocess one input (steps 1-4); no network call.

        Raises:
            InputError: The file cannot be read as an ECG.

        Example:
            >>> predictor.prepare(record).windows.shape  # doctest: +SKIP
            (7, 12, 250)
        """
        record = source if isinstance(source, EcgRecord) else read(source)
        issues = check_quality(record, thresholds=self._quality)
        if not is_acceptable(issues):
            return Abstention(reasons=tuple(issue for issue in issues if issue.severity == "reject"),
                              model=self.card.name, model_version=self.card.version)
        signal = preprocess(record, self._params)
        windows = np.ascontiguousarray(sliding_windows(signal, self._window, self._stride), dtype=np.float32)
        flagged = {issue.lead for issue in issues}
        rate = estimate_heart_rate(record, leads=[name for name in STANDARD_LEADS if name not in flagged])
        measurements = {} if rate is None else {"heart_rate_bpm": rate.bpm, "rr_interval_ms": rate.rr_interval_ms,
                                                "beats_detected": float(rate.beats)}
        return PreparedEcg(signal=signal, windows=windows, warnings=tuple(issues), measurements=measurements)

    def probabilities(self, window_logits: np.ndarray) -> np.ndarray:
        """Aggregate ``[windows, labels]`` logits as the card says and calibrate them.

        Example:
            >>> predictor.probabilities(np.zeros((7, 5))).shape  # doctest: +SKIP
            (5,)
        """
        logits = np.asarray(window_logits, dtype=np.float64)
        pooled = logits.max(axis=0) if self._aggregation == "max" else logits.mean(axis=0)
        return apply_temperature(pooled[None], self._temperature, multi_label=self._multi_label)[0]

    def _diagnosis(self, prepared: PreparedEcg, window_logits: np.ndarray) -> Diagnosis:
        probabilities = self.probabilities(window_logits)
        findings = tuple(
            Finding(label=label.name, probability=float(np.clip(probability, 0.0, 1.0)),
                    threshold=float(self.card.thresholds[label.name]), code=label.code, system=label.system,
                    description=label.description or None)
            for label, probability in zip(self.card.labels, probabilities)
        )
        return Diagnosis(model=self.card.name, model_version=self.card.version, findings=findings,
                         quality=prepared.warnings, artifact_sha256=self.artifact_sha256,
                         measurements=dict(prepared.measurements))

    def predict(self, source: str | Path | EcgRecord) -> Diagnosis | Abstention:
        """Diagnose one ECG file or record (steps 1-7 of the module docstring).

        Raises:
            InputError: The file cannot be read as an ECG.

        Example:
            >>> predictor.predict("../shared/data/ecg/cinc2021/HR06000.hea").kind  # doctest: +SKIP
            'diagnosis'
        """
        prepared = self.prepare(source)
        if isinstance(prepared, Abstention):
            return prepared
        return self._diagnosis(prepared, self.run({"signal": prepared.windows})[0])

    def _flush(self, batch: list[tuple[Any, Any]]) -> Iterator[Any]:
        ready = [value for value in batch if isinstance(value, PreparedEcg)]
        logits = self.run({"signal": np.concatenate([item.windows for item in ready])})[0] if ready else None
        offset = 0
        for value in batch:
            if isinstance(value, PreparedEcg):
                count = len(value.windows)
                yield self._diagnosis(value, logits[offset : offset + count])
                offset += count
            else:
                yield value

    def _prepare_or_raise(self, source: Any) -> PreparedEcg | Abstention:
        if isinstance(source, MayoDxError):  # an input that failed before reading (e.g. discovery)
            raise source
        return self.prepare(source)

    def predict_many(self, sources: Iterable[str | Path | EcgRecord], *, workers: int = 2,
                     on_error: Literal["raise", "return"] = "raise",
                     batch_windows: int = BATCH_WINDOWS) -> Iterator[Diagnosis | Abstention | Exception]:
        """Diagnose a stream in input order; reading runs in ``workers`` threads, windows of
        several records share one onnxruntime call (up to ``batch_windows``).

        Results equal :meth:`predict` per input. Memory stays bounded by ``2 * workers``
        records being read plus one batch of windows. A :class:`~mayo_dx.errors.MayoDxError`
        placed in ``sources`` stands for an input that already failed and is passed through.

        Args:
            sources: Paths or records, consumed lazily.
            workers: Reader threads.
            on_error: ``"raise"``, or ``"return"`` to yield each failed input's exception in
                its place (any ``Exception``: one bad file never stops a batch).
            batch_windows: Most windows per onnxruntime call.

        Example:
            >>> [r.kind for r in predictor.predict_many(["a.hea", "b.dcm"])]  # doctest: +SKIP
            ['diagnosis', 'abstention']
        """
        batch: list[Any] = []
        windows = 0
        for outcome in bounded_map(self._prepare_or_raise, sources, workers=workers):
            value: Any = outcome.value
            if outcome.error is not None:
                if on_error == "raise":
                    raise outcome.error
                value = outcome.error
            batch.append(value)
            windows += len(value.windows) if isinstance(value, PreparedEcg) else 0
            if windows >= batch_windows:
                yield from self._flush(batch)
                batch, windows = [], 0
        yield from self._flush(batch)

    def saliency(self, source: str | Path | EcgRecord, *, label: str | None = None,
                 occlusion_s: float = 0.5) -> np.ndarray:
        """Occlusion saliency ``[12, samples]`` at the network's sampling rate (gradient-free).

        See :func:`mayo_dx.runtime_saliency.occlusion_saliency`: each lead is cut into
        ``occlusion_s`` segments (default 0.5 s, about one beat's QRS-T); each segment is set to
        the missing-lead fill value in turn and the drop of ``label``'s calibrated probability
        is written over the segment's samples.

        Args:
            source: ECG file or record.
            label: Label name; default the label with the highest probability.
            occlusion_s: Segment length in seconds.

        Raises:
            InputError: Unreadable input, or a record the predictor abstains on.

        Example:
            >>> predictor.saliency(record).shape  # doctest: +SKIP
            (12, 1000)
        """
        from mayo_dx.runtime_saliency import occlusion_saliency

        prepared = self.prepare(source)
        if isinstance(prepared, Abstention):
            raise InputError(prepared.summary)
        names = self.card.label_names
        if label is not None and label not in names:
            raise InputError(f"unknown label {label!r}; the model knows {list(names)}")
        return occlusion_saliency(self, prepared.signal, label=label, occlusion_s=occlusion_s)

    def window_logits(self, signal: np.ndarray) -> np.ndarray:
        """Windows of a preprocessed signal ``[12, samples]`` -> logits ``[windows, labels]``.

        Example:
            >>> predictor.window_logits(np.zeros((12, 1000), np.float32)).shape  # doctest: +SKIP
            (7, 5)
        """
        return self.run({"signal": sliding_windows(signal, self._window, self._stride)})[0]

    @property
    def window(self) -> tuple[int, int]:
        """``(window_samples, stride_samples)`` from the card."""
        return self._window, self._stride

    @property
    def fill_value(self) -> float:
        """Value of an absent lead after preprocessing (used to occlude)."""
        return float(self._params.missing_lead_fill)
