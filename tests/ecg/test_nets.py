"""The registered 1-D ECG networks: shapes, lengths, parameter counts, gradients, determinism."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch", reason="the ECG networks need the [train] extra (torch)")

from torch import nn  # noqa: E402

import mayo_dx.ecg.nets as nets  # noqa: E402  (importing registers the networks)
from mayo_dx.ecg.nets_common import AdaptiveConcatPool1d  # noqa: E402
from mayo_dx.ecg.nets_ribeiro import adaptive_average_pool  # noqa: E402
from mayo_dx.ecg.network_specs import NETWORK_SPECS  # noqa: E402
from mayo_dx.errors import InputError, ModelNotFound  # noqa: E402
from mayo_dx.registry import get_model, list_models  # noqa: E402

ECG_MODELS = list_models(task="ecg")
NUM_LABELS = 5


@pytest.fixture(autouse=True)
def _single_thread() -> None:
    torch.set_num_threads(1)
    torch.manual_seed(0)


def _lengths(name: str) -> list[int]:
    minimum = NETWORK_SPECS[name].minimum_length
    lengths = {minimum, 1000, NETWORK_SPECS[name].window_samples}
    if minimum <= 250:
        lengths.add(250)
    return sorted(lengths)


def test_the_expected_networks_are_registered() -> None:
    assert {"xresnet1d101", "xresnet1d50", "xresnet1d18", "ribeiro_resnet", "inception1d"} <= set(ECG_MODELS)


@pytest.mark.parametrize("name", ECG_MODELS)
def test_every_registered_ecg_network_documents_itself(name: str) -> None:
    assert name in NETWORK_SPECS, f"{name} is registered without a NetworkSpec"
    spec = NETWORK_SPECS[name]
    assert get_model(name).description == spec.description
    network = nets.build_network(name, num_labels=NUM_LABELS)
    assert network.minimum_length == spec.minimum_length
    assert (network.num_labels, network.num_leads) == (NUM_LABELS, 12)


@pytest.mark.parametrize("name", ECG_MODELS)
def test_forward_shape_for_every_allowed_length(name: str) -> None:
    network = nets.build_network(name, num_labels=NUM_LABELS).eval()
    with torch.no_grad():
        for length in _lengths(name):
            logits = network(torch.randn(2, 12, length))
            assert logits.shape == (2, NUM_LABELS), (name, length)
            assert logits.dtype == torch.float32
            assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", ECG_MODELS)
def test_parameter_count_matches_the_documented_figure(name: str) -> None:
    documented = NETWORK_SPECS[name].parameters
    counted = nets.count_parameters(nets.build_network(name, num_labels=NUM_LABELS))
    assert abs(counted - documented) <= 0.05 * documented
    assert counted == documented  # the figure is documented exactly; a change must update it


def test_xresnet1d101_has_the_size_the_issue_quotes() -> None:
    counted = nets.count_parameters(nets.xresnet1d101(num_labels=5, num_leads=12))
    assert abs(counted - 1.9e6) <= 0.05 * 1.9e6  # "about 1.9 M parameters with 12 leads and 5 classes"


@pytest.mark.parametrize("name", ECG_MODELS)
def test_gradients_reach_every_parameter(name: str) -> None:
    network = nets.build_network(name, num_labels=NUM_LABELS).train()
    length = max(250, NETWORK_SPECS[name].minimum_length)
    signal = torch.randn(4, 12, length)
    targets = (torch.rand(4, NUM_LABELS) > 0.5).float()
    loss = nn.functional.binary_cross_entropy_with_logits(network(signal), targets)
    loss.backward()
    for parameter_name, parameter in network.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
    first_weight = next(p for p in network.parameters() if p.dim() == 3)
    assert first_weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ECG_MODELS)
def test_eval_mode_is_deterministic_and_batch_independent(name: str) -> None:
    network = nets.build_network(name, num_labels=NUM_LABELS).eval()
    signal = torch.randn(3, 12, max(250, NETWORK_SPECS[name].minimum_length))
    with torch.no_grad():
        first, second = network(signal), network(signal)
        alone = network(signal[1:2])
    assert torch.equal(first, second)
    torch.testing.assert_close(alone, first[1:2], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ECG_MODELS)
def test_bad_inputs_raise_input_error(name: str) -> None:
    network = nets.build_network(name, num_labels=NUM_LABELS).eval()
    minimum = NETWORK_SPECS[name].minimum_length
    with pytest.raises(InputError, match="at least"):
        network(torch.zeros(1, 12, minimum - 1))
    with pytest.raises(InputError, match="12 leads"):
        network(torch.zeros(1, 8, minimum))
    with pytest.raises(InputError, match="batch, leads, samples"):
        network(torch.zeros(12, minimum))


@pytest.mark.parametrize("name", ECG_MODELS)
def test_other_lead_counts_and_label_counts(name: str) -> None:
    network = nets.build_network(name, num_labels=1, num_leads=1).eval()
    with torch.no_grad():
        assert network(torch.randn(2, 1, max(250, NETWORK_SPECS[name].minimum_length))).shape == (2, 1)


def test_unknown_or_invalid_networks_are_refused() -> None:
    with pytest.raises(ModelNotFound):
        nets.build_network("no_such_network", num_labels=2)
    with pytest.raises(InputError):
        nets.xresnet1d18(num_labels=0)
    with pytest.raises(TypeError):
        nets.build_network("xresnet1d18", num_labels=2, no_such_option=1)


def test_xresnet1d101_follows_the_benchmark_layout() -> None:
    network = nets.xresnet1d101(num_labels=5)
    assert [len(stage) for stage in network.stages] == [3, 4, 23, 3]
    convolutions = [m for m in network.stem if isinstance(m, nn.Sequential)]
    assert [c[0].out_channels for c in convolutions] == [32, 32, 64]
    assert [c[0].kernel_size[0] for c in convolutions] == [5, 5, 5]
    assert convolutions[0][0].stride[0] == 2
    assert all(block.convolutions[-1][0].out_channels == 256 for stage in network.stages for block in stage)
    head = [(type(m).__name__, getattr(m, "p", None)) for m in network.head]
    assert head == [
        ("AdaptiveConcatPool1d", None),
        ("Flatten", None),
        ("BatchNorm1d", None),
        ("Dropout", 0.25),
        ("Linear", None),
        ("ReLU", None),
        ("BatchNorm1d", None),
        ("Dropout", 0.5),
        ("Linear", None),
    ]
    linears = [m for m in network.head if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 128), (128, 5)]
    assert isinstance(network.head[0], AdaptiveConcatPool1d)


def test_ribeiro_resnet_matches_the_reference_geometry_at_4096_samples() -> None:
    network = nets.ribeiro_resnet(num_labels=6).eval()
    shapes: list[tuple[int, ...]] = []
    hooks = [
        unit.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out[0].shape))) for unit in network.units
    ]
    with torch.no_grad():
        network(torch.randn(1, 12, 4096))
    for hook in hooks:
        hook.remove()
    assert shapes == [(1, 128, 1024), (1, 196, 256), (1, 256, 64), (1, 320, 16)]
    features = torch.randn(2, 320, 16)
    assert torch.equal(adaptive_average_pool(features, 16), features)  # identity at the reference length
    assert network.classifier.in_features == 320 * 16
    assert network.stem[1].kernel_size[0] == 16 and network.stem[1].out_channels == 64


@pytest.mark.parametrize("length", [1, 3, 16, 17, 63, 250, 1001])
def test_adaptive_average_pool_equals_torch_adaptive_pooling(length: int) -> None:
    features = torch.randn(2, 3, length)
    expected = nn.functional.adaptive_avg_pool1d(features, 16)
    torch.testing.assert_close(adaptive_average_pool(features, 16), expected, rtol=1e-6, atol=1e-6)


def test_module_surfaces_are_sorted() -> None:
    import mayo_dx.ecg.nets_common as common
    import mayo_dx.ecg.nets_inception as inception
    import mayo_dx.ecg.nets_ribeiro as ribeiro
    import mayo_dx.ecg.nets_xresnet as xresnet
    import mayo_dx.ecg.network_specs as specs

    def key(name: str) -> tuple[int, str]:
        return (0 if name.isupper() else 1 if name[:1].isupper() else 2), name

    for module in (nets, common, inception, ribeiro, xresnet, specs):
        assert list(module.__all__) == sorted(module.__all__, key=key), module.__name__
        assert all(hasattr(module, name) for name in module.__all__)
