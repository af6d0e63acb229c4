"""torch -> ONNX with the card inside, ``onnx.checker``, and onnxruntime parity on every export.

Exporter: the TorchScript-based ``torch.onnx.export(..., dynamo=False)``. With torch 2.14 the
default dynamo exporter needs the ``onnxscript`` package, which the ``[train]`` extra does not
install; the TorchScript-based path exports the 1-D ResNets (convolutions, batch norm, global
average/max pooling) with a symbolic batch and length, and turns ``AdaptiveAvgPool1d(1)`` /
``AdaptiveMaxPool1d(1)`` into ``GlobalAveragePool`` / ``GlobalMaxPool``, which accept any
length. Adaptive pooling to an output size other than 1 is refused by that exporter for a
dynamic length; use ``dynamic_length=False`` for such a network.

Every export: trace -> ``onnx.checker.check_model(full_check=True)`` -> (single-file 1-D
models) convolutions lifted to ``1 x k`` 2-D ones (:mod:`mayo_dx.export.planar`) and checked
again -> onnxruntime vs torch on
every parity input (|onnx - torch| <= atol + rtol * |torch| element-wise, fp32; default atol
1e-4, rtol 1e-4) -> card, hashes and parity figures into ``metadata_props`` -> written
atomically -> read back with :func:`mayo_dx.artifact.read_artifact`.

Example:
    >>> export_model(net, card, "ecg.onnx", parity_inputs=inputs)  # doctest: +SKIP
    PosixPath('ecg.onnx')
"""

from __future__ import annotations

import dataclasses
import io
import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import onnx
import onnxruntime
import torch

from mayo_dx.artifact import (
    ARTIFACT_FORMAT,
    CARD_KEY,
    CARD_SHA256_KEY,
    FORMAT_KEY,
    GRAPH_SHA256_KEY,
    MANIFEST_FORMAT,
    STAGE_KEY,
    graph_sha256,
    read_artifact,
    sha256_hex,
)
from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError, ExportParityError
from mayo_dx.export.planar import lift_to_two_dimensions
from mayo_dx.export.precise_norm import with_precise_instance_norms

__all__ = ["ExportStage", "export_model", "export_stages", "write_folder_artifact"]

MIN_OPSET = 17


@dataclass
class ExportStage:
    """One network of a multi-stage artifact.

    Attributes:
        name: Stage name (file ``<name>.onnx``), e.g. ``"localiser"``.
        net: The network (put in eval mode for export).
        parity_inputs: Arrays fed to the network (batch axis included); the first is traced.
        input_name: Name of the graph input.
        output_names: Names of the graph outputs, in the network's return order.
        dynamic_axes: Axis index -> symbolic name of the input; default: batch and every axis
            from 2 on (spatial sizes).
        extra: Anything recorded with the stage in the card (e.g. its patch size).

    Example:
        >>> ExportStage(name="localiser", net=None, parity_inputs=[]).input_name
        'image'
    """

    name: str
    net: Any
    parity_inputs: Sequence[np.ndarray]
    input_name: str = "image"
    output_names: tuple[str, ...] = ("logits",)
    dynamic_axes: Mapping[int, str] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)


def _outputs(result: Any) -> list[np.ndarray]:
    items = result if isinstance(result, (tuple, list)) else [result]
    return [item.detach().cpu().numpy() for item in items]


def _trace(net: torch.nn.Module, example: np.ndarray, input_name: str, output_names: Sequence[str],
           axes: Mapping[int, str], opset: int) -> onnx.ModelProto:
    if opset < MIN_OPSET:
        raise ValueError(f"opset must be at least {MIN_OPSET}, got {opset}")
    buffer = io.BytesIO()
    dynamic = {input_name: dict(axes), **{name: {0: axes.get(0, "batch")} for name in output_names}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript-based path warns that it is legacy
        # instance norms go out with float64 statistics (see mayo_dx.export.precise_norm)
        torch.onnx.export(with_precise_instance_norms(net),
                          (torch.from_numpy(np.ascontiguousarray(example, dtype=np.float32)),), buffer,
                          input_names=[input_name], output_names=list(output_names), opset_version=opset,
                          dynamic_axes=dynamic, dynamo=False, do_constant_folding=True)
    model = onnx.load_from_string(buffer.getvalue())
    _check(model)
    return model


def _check(model: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as error:
        raise ArtifactError(f"onnx.checker refused the exported graph: {error}") from error


def _parity(net: torch.nn.Module, graph: bytes, inputs: Sequence[np.ndarray], input_name: str,
            atol: float, rtol: float) -> dict[str, Any]:
    """Run torch and onnxruntime on every input; raise :class:`ExportParityError` on a mismatch."""
    if not inputs:
        raise ValueError("parity needs at least one input")
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    worst_abs = 0.0
    worst_excess = -np.inf
    shapes: list[list[int]] = []
    for index, array in enumerate(inputs):
        values = np.ascontiguousarray(array, dtype=np.float32)
        with torch.no_grad():
            expected = _outputs(net(torch.from_numpy(values)))
        actual = session.run(None, {input_name: values})
        if len(actual) != len(expected):
            raise ExportParityError(f"onnx gives {len(actual)} outputs, torch {len(expected)}")
        for reference, got in zip(expected, actual):
            if reference.shape != got.shape:
                raise ExportParityError(f"parity input {index} {list(values.shape)}: onnx output shape "
                                        f"{list(got.shape)} differs from torch {list(reference.shape)}")
            difference = np.abs(got.astype(np.float64) - reference.astype(np.float64))
            excess = float(np.max(difference - (atol + rtol * np.abs(reference)))) if difference.size else -np.inf
            deviation = float(difference.max()) if difference.size else 0.0
            if not np.all(np.isfinite(got)) or excess > 0:
                raise ExportParityError(
                    f"torch vs onnxruntime parity failed on input {index} {list(values.shape)}: max |onnx - torch| = "
                    f"{deviation:.3g} exceeds atol {atol:g} + rtol {rtol:g} * |torch|")
            worst_abs = max(worst_abs, deviation)
            worst_excess = max(worst_excess, excess)
        shapes.append(list(values.shape))
    return {"inputs": len(shapes), "input_shapes": shapes, "max_abs_diff": worst_abs, "atol": atol, "rtol": rtol,
            "runtime": f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider"}


def _bare(model: onnx.ModelProto) -> bytes:
    """The model without metadata, as hashed (producer set first: it is part of the hash)."""
    del model.metadata_props[:]
    model.producer_name = "mayo-dx"
    return model.SerializeToString()


def _finalise(model: onnx.ModelProto, metadata: Mapping[str, str]) -> tuple[bytes, str]:
    """Serialise with ``metadata`` attached; return the bytes and the graph SHA-256."""
    digest = graph_sha256(_bare(model))
    onnx.helper.set_model_props(model, {**metadata, GRAPH_SHA256_KEY: digest, FORMAT_KEY: ARTIFACT_FORMAT})
    data = model.SerializeToString()
    if graph_sha256(data) != digest:  # guards the hash definition against serializer changes
        raise ArtifactError("the graph hash changed when metadata was attached; the format assumption broke")
    return data, digest


def _export_record(opset: int, axes: Mapping[int, str], parity: Mapping[str, Any], input_name: str,
                   output_names: Sequence[str]) -> dict[str, Any]:
    return {"format": ARTIFACT_FORMAT, "opset": opset, "exporter": "torch.onnx.export (TorchScript-based)",
            "torch_version": torch.__version__.split("+")[0], "onnx_version": onnx.__version__,
            "input": input_name, "outputs": list(output_names), "dynamic_axes": {str(k): v for k, v in axes.items()},
            "parity": dict(parity)}


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".partial")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _axes(ndim: int, dynamic_length: bool, given: Mapping[int, str] | None) -> dict[int, str]:
    if given is not None:
        return dict(given)
    axes = {0: "batch"}
    if dynamic_length:
        names = {2: "length"} if ndim == 3 else {axis: f"size_{axis}" for axis in range(2, ndim)}
        axes.update(names)
    return axes


def export_model(net: torch.nn.Module, card: ModelCard, path: str | Path, *, parity_inputs: Sequence[np.ndarray],
                 dynamic_length: bool = True, opset: int = MIN_OPSET, atol: float = 1e-4, rtol: float = 1e-4,
                 input_name: str = "signal", output_name: str = "logits", planar: bool = True) -> Path:
    """Export one network and its card as a single verified ``.onnx`` artifact.

    Args:
        net: The trained network; exported in eval mode (restored afterwards).
        card: The model card; its ``extra["export"]`` is filled in (opset, exporter, graph
            SHA-256, parity figures).
        path: Output ``.onnx`` file (written atomically).
        parity_inputs: float32 arrays with batch axis (ECG: ``[batch, 12, length]``; see
            :func:`mayo_dx.export.ecg_parity_inputs`); the first one is traced. Vary batch and
            length to prove the dynamic axes.
        dynamic_length: Make every axis after the channel axis symbolic (ECG: ``length``).
        opset: ONNX opset, at least 17.
        atol: Absolute tolerance of the parity check.
        rtol: Relative tolerance of the parity check.
        input_name: Graph input name (``"signal"`` for ECG models).
        output_name: Graph output name (``"logits"`` for ECG models).
        planar: Run 1-D convolutions as ``1 x k`` 2-D ones in the graph
            (:func:`mayo_dx.export.planar.lift_to_two_dimensions`: onnxruntime's faster 2-D
            kernels, same input, output and arithmetic); skipped, with the reason in the card,
            when the graph does not allow it.

    Returns:
        The written path.

    Raises:
        ExportParityError: onnxruntime and torch disagree beyond the tolerance (message gives
            the maximum deviation); nothing is written.
        ArtifactError: The checker refuses the graph, or the output size differs from
            ``len(card.labels)``.

    Example:
        >>> export_model(net, card, "ecg.onnx", parity_inputs=[windows])  # doctest: +SKIP
        PosixPath('ecg.onnx')
    """
    target = Path(path)
    if not parity_inputs:
        raise ValueError("export needs at least one parity input")
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            first = _outputs(net(torch.from_numpy(np.ascontiguousarray(parity_inputs[0], dtype=np.float32))))
        if len(first) != 1 or first[0].ndim != 2 or first[0].shape[1] != len(card.labels):
            shapes = [list(item.shape) for item in first]
            raise ArtifactError(f"the network returns {shapes}; the card needs one output [batch, {len(card.labels)}]")
        axes = _axes(np.ndim(parity_inputs[0]), dynamic_length, None)
        model = _trace(net, parity_inputs[0], input_name, [output_name], axes, opset)
        layout = "as traced"
        if planar and np.ndim(parity_inputs[0]) == 3:
            model, refusal = lift_to_two_dimensions(model)
            layout = f"as traced ({refusal})" if refusal else "1-D convolutions and pools lifted to 1 x k 2-D"
            if refusal is None:
                _check(model)
        bare = _bare(model)
        parity = _parity(net, bare, parity_inputs, input_name, atol, rtol)
    finally:
        net.train(was_training)
    bare_hash = graph_sha256(bare)
    export = {**_export_record(opset, axes, parity, input_name, [output_name]), "layout": layout,
              "graph_sha256": bare_hash}
    final_card = dataclasses.replace(card, extra={**dict(card.extra), "export": export})
    text = final_card.to_json()
    data, digest = _finalise(model, {CARD_KEY: text, CARD_SHA256_KEY: sha256_hex(text.encode("utf-8"))})
    if digest != bare_hash:
        raise ArtifactError("graph hash mismatch after finalising")
    _write(target, data)
    read_artifact(target)  # the runtime's own verification, before anyone else reads the file
    return target


def export_stages(stages: Sequence[ExportStage], card: ModelCard, directory: str | Path, *,
                  opset: int = MIN_OPSET, atol: float = 1e-4, rtol: float = 1e-4) -> Path:
    """Export a multi-stage model as an artifact folder (``card.json``, stages, ``manifest.json``).

    Each stage is traced, checked and parity-tested like :func:`export_model`; its file carries
    its stage name and graph SHA-256 in ``metadata_props``. The card records every stage's graph
    hash and parity figures in ``extra["export"]["stages"]``; ``manifest.json`` records the
    SHA-256 of every file, and its own SHA-256 is the artifact's.

    Args:
        stages: The stages in pipeline order (names unique).
        card: The model card of the whole pipeline.
        directory: Output folder (created; existing stage files are replaced).
        opset: ONNX opset, at least 17.
        atol: Absolute parity tolerance.
        rtol: Relative parity tolerance.

    Returns:
        The artifact folder.

    Raises:
        ExportParityError: A stage fails parity; nothing is written for the artifact.
        ValueError: No stages, or repeated stage names.

    Example:
        >>> export_stages([localiser_stage, analyser_stage], card, "ct_model")  # doctest: +SKIP
        PosixPath('ct_model')
    """
    names = [stage.name for stage in stages]
    if not stages or len(set(names)) != len(names):
        raise ValueError(f"stages need unique names, got {names}")
    folder = Path(directory)
    written: list[tuple[ExportStage, bytes, str, dict[str, Any]]] = []
    for stage in stages:
        if not stage.parity_inputs:
            raise ValueError(f"stage {stage.name!r} needs at least one parity input")
        was_training = stage.net.training
        stage.net.eval()
        try:
            axes = _axes(np.ndim(stage.parity_inputs[0]), True, stage.dynamic_axes)
            model = _trace(stage.net, stage.parity_inputs[0], stage.input_name, stage.output_names, axes, opset)
            parity = _parity(stage.net, _bare(model), stage.parity_inputs, stage.input_name, atol, rtol)
        finally:
            stage.net.train(was_training)
        data, digest = _finalise(model, {STAGE_KEY: stage.name})
        record = {"name": stage.name, "graph_sha256": digest, **dict(stage.extra),
                  **_export_record(opset, axes, parity, stage.input_name, stage.output_names)}
        written.append((stage, data, digest, record))
    export = {"format": ARTIFACT_FORMAT, "stages": [record for *_, record in written]}
    final_card = dataclasses.replace(card, extra={**dict(card.extra), "export": export})
    write_folder_artifact(folder, final_card, [(stage.name, data, digest, stage.input_name, stage.output_names)
                                               for stage, data, digest, _ in written])
    return folder


def write_folder_artifact(directory: str | Path, card: ModelCard,
                          stages: Sequence[tuple[str, bytes, str, str, Sequence[str]]]) -> Path:
    """Write a folder artifact: ``card.json``, one ``<stage>.onnx`` per stage, ``manifest.json``.

    Used by :func:`export_stages` and by INT8 quantisation of folder artifacts. The card must
    already hold ``extra["export"]`` (with each stage's graph SHA-256); the folder is read back
    with :func:`mayo_dx.artifact.read_artifact` before returning.

    Args:
        directory: Output folder (created; existing stage files are replaced).
        card: The card of the whole pipeline.
        stages: ``(name, serialised onnx with its STAGE_KEY metadata, graph SHA-256, input name,
            output names)`` per stage, in pipeline order.

    Returns:
        The folder.

    Example:
        >>> write_folder_artifact("ct_model.int8", card, stages)  # doctest: +SKIP
        PosixPath('ct_model.int8')
    """
    folder = Path(directory)
    card_bytes = json.dumps(card.to_dict(), sort_keys=True, indent=1).encode("utf-8")
    folder.mkdir(parents=True, exist_ok=True)
    manifest_stages = []
    for name, data, digest, input_name, output_names in stages:
        file_name = f"{name}.onnx"
        _write(folder / file_name, data)
        manifest_stages.append({"name": name, "file": file_name, "sha256": sha256_hex(data), "graph_sha256": digest,
                                "input": input_name, "outputs": list(output_names)})
    _write(folder / "card.json", card_bytes)
    manifest = {"format": MANIFEST_FORMAT, "name": card.name, "version": card.version,
                "card": {"file": "card.json", "sha256": sha256_hex(card_bytes)}, "stages": manifest_stages}
    _write(folder / "manifest.json", json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
    read_artifact(folder)
    return folder
