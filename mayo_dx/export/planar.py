"""Rewrite a 1-D convolutional ONNX graph as an equivalent 2-D one (``[batch, C, 1, length]``).

Why: onnxruntime's CPU provider converts 2-D convolutions to its blocked ``NCHWc`` layout
(``ORT_ENABLE_ALL``) and runs them with its fastest kernels; 1-D convolutions get neither. The
ECG networks are 1-D, so they are exported with every ``Conv``/``MaxPool``/``AveragePool`` lifted
to a ``1 x k`` kernel over a unit height axis inserted right after the graph input. The graph's
input and output are unchanged (``[batch, 12, length]`` in, ``[batch, labels]`` out), the
arithmetic is the same, and the export's parity check runs on the rewritten graph.
``benchmarks/RESULTS.md`` gives the measured speed-up.

The rewrite is all or nothing: it applies only when the graph has one rank-3 input and only
operators whose meaning does not depend on rank (convolutions, pooling, batch norm,
activations, elementwise arithmetic on computed tensors or scalars, ``Concat``, ``Flatten``
after global pooling, ``Gemm``). Anything else (``Reshape``, ``Pad``, ``Slice``...) leaves the
graph as it is, and :func:`lift_to_two_dimensions` says why.

Example:
    >>> import onnx
    >>> from onnx import helper, TensorProto
    >>> graph = helper.make_graph(
    ...     [helper.make_node("Relu", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12, "length"])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 12, "length"])])
    >>> lifted, reason = lift_to_two_dimensions(helper.make_model(graph))
    >>> reason is None, [node.op_type for node in lifted.graph.node]
    (True, ['Unsqueeze', 'Relu', 'Squeeze'])
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

__all__ = ["lift_to_two_dimensions"]

_SPATIAL = {"Conv", "MaxPool", "AveragePool"}
_RANK_FREE = {"BatchNormalization", "Relu", "LeakyRelu", "Sigmoid", "Tanh", "Elu", "Selu", "Gelu", "HardSigmoid",
              "Softplus", "Identity", "Dropout", "Clip", "GlobalAveragePool", "GlobalMaxPool", "Gemm"}
_ELEMENTWISE = {"Add", "Sub", "Mul", "Div", "Max", "Min", "Sum"}


def _initialiser_rank(model: onnx.ModelProto) -> dict[str, int]:
    ranks = {item.name: len(item.dims) for item in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    ranks[node.output[0]] = len(attribute.t.dims)
    return ranks


def _refusal(model: onnx.ModelProto) -> str | None:
    """Why the graph cannot be lifted, or ``None`` when it can."""
    inputs = [item for item in model.graph.input
              if item.name not in {initialiser.name for initialiser in model.graph.initializer}]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 3:
        return "not a graph with one rank-3 input"
    constant_rank = _initialiser_rank(model)
    flattened = False
    for node in model.graph.node:
        if node.op_type in _SPATIAL or node.op_type in _RANK_FREE or node.op_type == "Constant":
            if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] not in constant_rank:
                return f"Conv {node.name!r} has a computed weight"
            if flattened and node.op_type in _SPATIAL | {"GlobalAveragePool", "GlobalMaxPool"}:
                return f"{node.op_type} after Flatten"
            continue
        if node.op_type in _ELEMENTWISE:
            if any(constant_rank.get(name, 0) > 1 for name in node.input):
                return f"{node.op_type} {node.name!r} broadcasts a constant of rank > 1"
            continue
        if node.op_type == "Concat":
            continue
        if node.op_type == "Flatten":
            axis = next((attribute.i for attribute in node.attribute if attribute.name == "axis"), 1)
            if axis != 1:
                return f"Flatten with axis {axis}"
            flattened = True
            continue
        return f"operator {node.op_type} depends on rank"
    return None


def _ints(node: onnx.NodeProto, name: str) -> list[int] | None:
    for attribute in node.attribute:
        if attribute.name == name:
            return list(attribute.ints)
    return None


def _set_ints(node: onnx.NodeProto, name: str, values: list[int]) -> None:
    for attribute in node.attribute:
        if attribute.name == name:
            del attribute.ints[:]
            attribute.ints.extend(values)
            return
    node.attribute.append(helper.make_attribute(name, values))


def _unique(model: onnx.ModelProto, stem: str) -> str:
    names = {name for node in model.graph.node for name in (*node.input, *node.output)}
    names |= {item.name for item in model.graph.initializer}
    candidate, index = stem, 0
    while candidate in names:
        index += 1
        candidate = f"{stem}_{index}"
    return candidate


def _without_ceil_mode(node: onnx.NodeProto) -> None:
    """Rewrite a lifted pool's ``ceil_mode=1`` as explicit end padding (same output).

    onnxruntime's NCHWc layout does not take ceil-mode pools; one such pool on a residual
    path sends every later block back to plain NCHW with a reorder on each side (measured on
    xresnet1d101: 60 reorders, a third of the graph's time). With kernel >= stride, ceil mode
    equals ``stride - 1`` more padding at the end with padded elements left out of averages
    (max pooling ignores padding anyway): the output length is ``floor((L + s - 1 - k) / s) + 1
    = ceil((L - k) / s) + 1`` and every window covers the same real elements. Pools with other
    settings keep their ceil mode.
    """
    if node.op_type not in {"MaxPool", "AveragePool"} or not any(
            attribute.name == "ceil_mode" and attribute.i == 1 for attribute in node.attribute):
        return
    kernel, strides = _ints(node, "kernel_shape") or [], _ints(node, "strides") or [1] * 2
    pads = _ints(node, "pads") or [0, 0, 0, 0]
    dilations = _ints(node, "dilations") or [1, 1]
    include_pad = next((attribute.i for attribute in node.attribute if attribute.name == "count_include_pad"), 0)
    if any(size < step for size, step in zip(kernel, strides)) or any(value != 1 for value in dilations):
        return
    if node.op_type == "AveragePool" and include_pad and any(pads):
        return
    _set_ints(node, "pads", [pads[0], pads[1], pads[2] + strides[0] - 1, pads[3] + strides[1] - 1])
    for attribute in node.attribute:
        if attribute.name == "ceil_mode":
            attribute.i = 0
    if node.op_type == "AveragePool":
        if any(attribute.name == "count_include_pad" for attribute in node.attribute):
            next(attribute for attribute in node.attribute if attribute.name == "count_include_pad").i = 0
        else:
            node.attribute.append(helper.make_attribute("count_include_pad", 0))


def lift_to_two_dimensions(model: onnx.ModelProto) -> tuple[onnx.ModelProto, str | None]:
    """Return an equivalent graph whose 1-D convolutions and pools run as ``1 x k`` 2-D ones.

    Args:
        model: An ONNX model with one ``[batch, channels, length]`` input.

    Returns:
        ``(lifted, None)``, or ``(model, reason)`` unchanged when the rewrite does not apply.
        The lifted graph keeps the input and output names and shapes; intermediate shape
        annotations are dropped (onnxruntime infers them).

    Example:
        >>> lifted, reason = lift_to_two_dimensions(model)  # doctest: +SKIP
    """
    reason = _refusal(model)
    if reason is not None:
        return model, reason
    lifted = onnx.ModelProto()
    lifted.CopyFrom(model)
    graph = lifted.graph
    source = next(item.name for item in graph.input
                  if item.name not in {initialiser.name for initialiser in graph.initializer})
    planar = _unique(lifted, f"{source}_planar")
    axes = _unique(lifted, "planar_axis")
    initialisers = {item.name: item for item in graph.initializer}
    lifted_weights: set[str] = set()
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name == source:
                node.input[index] = planar
        if node.op_type in _SPATIAL:
            for name in ("kernel_shape", "strides", "dilations"):
                values = _ints(node, name)
                if values is not None:
                    _set_ints(node, name, [1, *values])
            pads = _ints(node, "pads")
            if pads is not None:
                _set_ints(node, "pads", [0, pads[0], 0, pads[1]])
            _without_ceil_mode(node)
        if node.op_type == "Conv" and node.input[1] not in lifted_weights:
            weight = initialisers[node.input[1]]
            weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight)[:, :, None, :], weight.name))
            lifted_weights.add(node.input[1])
        if node.op_type == "Concat":
            axis = next(attribute for attribute in node.attribute if attribute.name == "axis")
            axis.i = axis.i + 1 if axis.i >= 2 else (axis.i - 1 if axis.i <= -2 else axis.i)
    graph.initializer.append(numpy_helper.from_array(np.array([2], dtype=np.int64), axes))
    graph.node.insert(0, helper.make_node("Unsqueeze", [source, axes], [planar], name="planar_unsqueeze"))
    for output in graph.output:  # rank-3 outputs (a 1-D map) go back to [batch, C, length]
        if len(output.type.tensor_type.shape.dim) == 3:
            inner = _unique(lifted, f"{output.name}_planar")
            for node in graph.node:
                for index, name in enumerate(node.output):
                    if name == output.name:
                        node.output[index] = inner
                for index, name in enumerate(node.input):
                    if name == output.name:
                        node.input[index] = inner
            graph.node.append(helper.make_node("Squeeze", [inner, axes], [output.name], name=f"planar_squeeze_{output.name}"))
    del graph.value_info[:]
    return lifted, None
