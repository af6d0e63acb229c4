"""The 1-D -> 2-D graph rewrite: same outputs, 2-D kernels, refusal when rank matters."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from mayo_dx.artifact import read_artifact
from mayo_dx.export import ecg_parity_inputs, export_model
from mayo_dx.export.planar import lift_to_two_dimensions
from tests.export.tiny import TinyEcgNet, ecg_card


def _trace(net: nn.Module, length: int = 250) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(net.eval(), (torch.zeros(2, 12, length),), buffer, input_names=["signal"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"signal": {0: "batch", 2: "length"}, "logits": {0: "batch"}})
    return onnx.load_from_string(buffer.getvalue())


def _run(model: onnx.ModelProto, values: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: values})[0]


class _Pools(nn.Module):
    """Strided, padded and dilated convolutions, both pools, a concat on the length axis."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.first = nn.Conv1d(12, 8, 5, stride=2, padding=3, dilation=2)
        self.second = nn.Conv1d(8, 8, 3, padding=1, groups=2, bias=False)
        self.max_pool = nn.MaxPool1d(3, stride=2, padding=1, ceil_mode=True)
        self.average_pool = nn.AvgPool1d(2, stride=2, ceil_mode=True)
        self.average = nn.AdaptiveAvgPool1d(1)
        self.maximum = nn.AdaptiveMaxPool1d(1)
        self.head = nn.Linear(16, 3)

    def forward(self, signal: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.first(signal))
        features = torch.cat([self.max_pool(features), self.average_pool(self.second(features))], dim=2)
        return self.head(torch.cat([self.average(features), self.maximum(features)], dim=1).flatten(1))


@pytest.mark.parametrize("net", [TinyEcgNet(), _Pools()], ids=["tiny_ecg", "pools"])
def test_lifted_graph_gives_the_same_outputs_with_two_dimensional_kernels(net: nn.Module) -> None:
    model = _trace(net)
    lifted, reason = lift_to_two_dimensions(model)
    assert reason is None
    onnx.checker.check_model(lifted, full_check=True)
    for node in lifted.graph.node:
        if node.op_type in {"Conv", "MaxPool", "AveragePool"}:
            kernel = next(attribute.ints for attribute in node.attribute if attribute.name == "kernel_shape")
            assert len(kernel) == 2 and kernel[0] == 1
    assert [item.name for item in lifted.graph.input] == ["signal"]
    rng = np.random.default_rng(0)
    for shape in ((1, 12, 250), (3, 12, 300)):
        values = rng.normal(size=shape).astype(np.float32)
        np.testing.assert_allclose(_run(lifted, values), _run(model, values), atol=1e-5, rtol=1e-5)


def test_lifted_graph_matches_torch_and_moves_length_axis_concats() -> None:
    net = _Pools().eval()
    lifted, reason = lift_to_two_dimensions(_trace(net))
    assert reason is None
    values = np.random.default_rng(1).normal(size=(2, 12, 333)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(values)).numpy()
    np.testing.assert_allclose(_run(lifted, values), expected, atol=1e-5, rtol=1e-5)
    assert not any(attribute.name == "ceil_mode" and attribute.i for node in lifted.graph.node
                   for attribute in node.attribute)  # rewritten as end padding
    for length in (250, 251, 64, 65):
        values = np.random.default_rng(length).normal(size=(2, 12, length)).astype(np.float32)
        with torch.no_grad():
            np.testing.assert_allclose(_run(lifted, values), net(torch.from_numpy(values)).numpy(), atol=1e-5, rtol=1e-5)
    concat = [node for node in lifted.graph.node if node.op_type == "Concat"]
    axes = sorted(next(attribute.i for attribute in node.attribute if attribute.name == "axis") for node in concat)
    assert axes == [1, 3]  # channel concat stays at 1, the length concat moves from 2 to 3


def test_rank_dependent_graphs_are_left_as_they_are() -> None:
    signal = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 12, "length"])
    output = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", None])
    shape = numpy_helper.from_array(np.array([0, -1], dtype=np.int64), "shape")
    model = helper.make_model(helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "g",
                                                [signal], [output], [shape]))
    same, reason = lift_to_two_dimensions(model)
    assert same is model and "Reshape" in reason
    scale = numpy_helper.from_array(np.ones((12, 1), dtype=np.float32), "scale")
    broadcast = helper.make_model(helper.make_graph([helper.make_node("Mul", ["x", "scale"], ["z"])], "g",
                                                    [signal], [helper.make_tensor_value_info("z", TensorProto.FLOAT,
                                                                                             ["batch", 12, "length"])],
                                                    [scale]))
    assert "rank > 1" in lift_to_two_dimensions(broadcast)[1]
    mean = helper.make_model(helper.make_graph([helper.make_node("ReduceMean", ["x"], ["m"], axes=[-1])], "g",
                                               [signal], [helper.make_tensor_value_info("m", TensorProto.FLOAT,
                                                                                        ["batch", 12, 1])]))
    assert "ReduceMean" in lift_to_two_dimensions(mean)[1]
    volume = helper.make_tensor_value_info("v", TensorProto.FLOAT, ["batch", 1, 8, 8, 8])
    assert "rank-3" in lift_to_two_dimensions(helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["v"], ["w"])], "g", [volume],
        [helper.make_tensor_value_info("w", TensorProto.FLOAT, ["batch", 1, 8, 8, 8])])))[1]


def test_export_writes_the_lifted_graph_and_says_so(tmp_path: Path) -> None:
    card = ecg_card()
    inputs = ecg_parity_inputs(card, [], generated=2)
    artifact = read_artifact(export_model(TinyEcgNet(), card, tmp_path / "lifted.onnx", parity_inputs=inputs))
    assert artifact.card.extra["export"]["layout"].startswith("1-D convolutions and pools lifted")
    graph = onnx.load_from_string(artifact.stages["model"])
    assert all(len(node.attribute[0].ints) == 2 for node in graph.graph.node
               if node.op_type == "Conv" and node.attribute[0].name in {"dilations", "kernel_shape"})
    flat = read_artifact(export_model(TinyEcgNet(), card, tmp_path / "flat.onnx", parity_inputs=inputs, planar=False))
    assert flat.card.extra["export"]["layout"] == "as traced"
    assert artifact.graph_sha256["model"] != flat.graph_sha256["model"]


def test_registered_networks_lift_or_say_why() -> None:
    nets = pytest.importorskip("mayo_dx.ecg.nets")
    for name, expected in (("xresnet1d18", None), ("inception1d", None)):
        network = nets.build_network(name, num_labels=5).eval()
        lifted, reason = lift_to_two_dimensions(_trace(network))
        assert reason is expected, (name, reason)
        values = np.random.default_rng(2).normal(size=(2, 12, 250)).astype(np.float32)
        with torch.no_grad():
            expected_logits = network(torch.from_numpy(values)).numpy()
        np.testing.assert_allclose(_run(lifted, values), expected_logits, atol=1e-4, rtol=1e-4)
    ribeiro = nets.build_network("ribeiro_resnet", num_labels=5).eval()
    assert lift_to_two_dimensions(_trace(ribeiro, length=512))[1] is not None


def test_lifted_xresnet_runs_in_onnxruntimes_blocked_layout_without_reorders(tmp_path: Path) -> None:
    """The speed property itself: after onnxruntime's optimiser, every residual Add and ReLU is
    fused into an NCHWc convolution (no layout reorder inside the network)."""
    nets = pytest.importorskip("mayo_dx.ecg.nets")
    lifted, reason = lift_to_two_dimensions(_trace(nets.build_network("xresnet1d18", num_labels=5).eval()))
    assert reason is None
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    onnxruntime.InferenceSession(lifted.SerializeToString(), options, providers=["CPUExecutionProvider"])
    nodes = onnx.load(str(tmp_path / "optimised.onnx")).graph.node
    if not any(node.domain == "com.microsoft.nchwc" for node in nodes):
        pytest.skip("onnxruntime uses no NCHWc layout on this CPU")
    optimised = [node.op_type for node in nodes]
    assert optimised.count("ReorderOutput") <= 1 and "Add" not in optimised and "Relu" not in optimised, optimised
