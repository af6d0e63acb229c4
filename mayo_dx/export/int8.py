"""One static INT8 recipe for every graph (ECG and CT stages), with onnxruntime.quantization.

Recipe: ``quant_pre_process`` (constant folding, shape inference), then ``quantize_static``
in QDQ format with per-channel signed INT8 weights, **unsigned** INT8 activations and MinMax
calibration over the given feeds, on onnxruntime's default operator set (convolutions, matrix
products, and the adds, pools and concatenations between them, so that activations stay INT8
from one convolution to the next). Measured on xresnet1d101 (2 threads, AVX-512 VNNI): U8S8 on
every default operator ran 2.2x the float32 NCHWc graph; S8S8 ran slower than float32, and
quantising only Conv/MatMul/Gemm (a float Add and ReLU between each pair) ran at 0.8x. On
CPUs without VNNI, U8S8 uses ``VPMADDUBSW``, which can saturate; the callers' metric check
catches an accuracy loss either way. Float64 tensors (the CT graphs' instance-norm
statistics, :mod:`mayo_dx.export.precise_norm`) are left as they are by the quantiser.

Example:
    >>> model = static_int8(graph_bytes, [{"signal": windows}])  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import onnx
import onnxruntime
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

__all__ = ["RECIPE", "speed_ratio", "static_int8"]

#: How the graphs were quantised, in words (stored in the new card).
RECIPE = ("onnxruntime.quantization static INT8: QDQ, per-channel int8 weights, uint8 activations (U8S8), "
          "MinMax calibration, onnxruntime's default operator set")


class _Feeds(CalibrationDataReader):
    def __init__(self, feeds: Iterable[Mapping[str, np.ndarray]]) -> None:
        self._feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        feed = next(self._feeds, None)
        return None if feed is None else {name: np.ascontiguousarray(value, dtype=np.float32)
                                          for name, value in feed.items()}


def static_int8(graph: bytes, feeds: Iterable[Mapping[str, np.ndarray]]) -> onnx.ModelProto:
    """Quantise one float32 graph with :data:`RECIPE`, calibrated on ``feeds``.

    Args:
        graph: The serialised float32 model (metadata may be present; it is kept by the tools
            but callers replace it).
        feeds: Calibration inputs, one ``{input name: float32 array}`` per run (consumed once).

    Returns:
        The quantised model.

    Example:
        >>> quantised = static_int8(open("fp32.onnx", "rb").read(), [{"signal": windows}])  # doctest: +SKIP
    """
    with tempfile.TemporaryDirectory() as folder:
        plain, ready, quantised = (Path(folder) / name for name in ("fp32.onnx", "ready.onnx", "int8.onnx"))
        plain.write_bytes(graph)
        quant_pre_process(str(plain), str(ready), skip_symbolic_shape=True)  # folds constants (conv biases)
        quantize_static(str(ready), str(quantised), _Feeds(feeds), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return onnx.load(str(quantised))


def speed_ratio(fp32: bytes, int8: bytes, feed: Mapping[str, np.ndarray], *, threads: int = 2,
                repeats: int = 5) -> dict[str, float]:
    """Time one feed through both graphs (best of ``repeats`` after a warm-up, runtime session options).

    Args:
        fp32: The float32 graph.
        int8: The quantised graph.
        feed: One ``{input name: array}`` (e.g. a batch of ECG windows or one CT patch).
        threads: ``intra_op_num_threads`` of both sessions.
        repeats: Timed runs per graph.

    Returns:
        ``{"fp32_seconds", "int8_seconds", "int8_speedup"}`` (``int8_speedup`` > 1: INT8 is faster).

    Example:
        >>> speed_ratio(fp32_bytes, int8_bytes, {"signal": windows})["int8_speedup"]  # doctest: +SKIP
        2.4
    """
    from mayo_dx.runtime import session_options

    seconds = {}
    for name, graph in (("fp32", fp32), ("int8", int8)):
        session = onnxruntime.InferenceSession(graph, session_options(threads), providers=["CPUExecutionProvider"])
        session.run(None, dict(feed))
        timings = []
        for _ in range(repeats):
            start = time.perf_counter()
            session.run(None, dict(feed))
            timings.append(time.perf_counter() - start)
        seconds[name] = min(timings)
    return {"fp32_seconds": round(seconds["fp32"], 5), "int8_seconds": round(seconds["int8"], 5),
            "int8_speedup": round(seconds["fp32"] / seconds["int8"], 3)}
