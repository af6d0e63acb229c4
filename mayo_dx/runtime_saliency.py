"""Gradient-free occlusion saliency for ECG predictors (runtime layer, no torch).

Each lead of the preprocessed signal is cut into consecutive segments of ``occlusion_s``
seconds (default 0.5 s: about one QRS-T complex at normal rates; a 10 s record at 100 Hz gives
12 leads x 20 segments = 240 occluded copies). In each copy one segment is set to the value an
absent lead gets after preprocessing (the card's ``missing_lead_fill``, 0 = the normalised
baseline), the copy goes through the same windows, aggregation and calibration as a
prediction, and ``p(original) - p(occluded)`` for the chosen label is written over that
segment's samples. Positive values mark evidence *for* the label, negative values evidence
against it. All copies run in batched onnxruntime calls (512 windows each), so the map is
deterministic and costs about 240 predictions.

Example:
    >>> occlusion_saliency(predictor, prepared.signal).shape  # doctest: +SKIP
    (12, 1000)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from mayo_dx.ecg.signal import sliding_windows

if TYPE_CHECKING:  # pragma: no cover
    from mayo_dx.runtime_ecg import EcgPredictor

__all__ = ["occlusion_saliency"]

_CHUNK_WINDOWS = 512


def occlusion_saliency(predictor: "EcgPredictor", signal: np.ndarray, *, label: str | None = None,
                       occlusion_s: float = 0.5) -> np.ndarray:
    """Occlusion map ``[12, samples]`` of one label for a preprocessed signal.

    Args:
        predictor: A loaded ECG predictor.
        signal: Preprocessed ``[12, samples]`` (``predictor.prepare(x).signal``).
        label: Label name; default the most probable label.
        occlusion_s: Segment length in seconds at the network's sampling rate.

    Returns:
        float32 ``[12, samples]``: drop of the calibrated probability per occluded segment.

    Raises:
        ValueError: ``occlusion_s`` not positive, or the predictor's rate unknown.

    Example:
        >>> occlusion_saliency(predictor, signal, label="MI", occlusion_s=0.25)  # doctest: +SKIP
    """
    if occlusion_s <= 0:
        raise ValueError("occlusion_s must be positive")
    rate = predictor.sampling_rate
    if rate is None:
        raise ValueError("the card keeps the record's sampling rate; occlusion needs a fixed rate")
    window, stride = predictor.window
    base_logits = predictor.window_logits(signal)
    base = predictor.probabilities(base_logits)
    names = predictor.card.label_names
    index = int(np.argmax(base)) if label is None else names.index(label)
    segment = max(1, int(round(occlusion_s * rate)))
    length = signal.shape[-1]
    starts = list(range(0, length, segment))
    copies: list[tuple[int, int]] = [(lead, start) for lead in range(signal.shape[0]) for start in starts]
    per_copy = len(sliding_windows(signal, window, stride))
    saliency = np.zeros(signal.shape, dtype=np.float32)
    copies_per_chunk = max(1, _CHUNK_WINDOWS // per_copy)
    for first in range(0, len(copies), copies_per_chunk):
        chunk = copies[first : first + copies_per_chunk]
        batch = []
        for lead, start in chunk:
            occluded = np.array(signal, dtype=np.float32, copy=True)
            occluded[lead, start : start + segment] = predictor.fill_value
            batch.append(sliding_windows(occluded, window, stride))
        logits = predictor.run({"signal": np.concatenate(batch)})[0].reshape(len(chunk), per_copy, -1)
        for (lead, start), copy_logits in zip(chunk, logits):
            drop = base[index] - predictor.probabilities(copy_logits)[index]
            saliency[lead, start : start + segment] = drop
    return saliency
