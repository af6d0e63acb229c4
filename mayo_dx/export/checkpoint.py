"""``mayo-dx export``: a Lightning checkpoint to a verified ONNX artifact (training layer).

The checkpoint is opened with :func:`mayo_dx.training.checkpoint.load_trained` (network in eval
mode plus its card). ECG parity inputs are the real records (pydicom's ``waveform_ecg.dcm``
and ``shared/data/ecg`` when present) and generated ones, preprocessed with the card's own
parameters, fed both as sliding-window batches and as whole signals.

Example:
    >>> export_checkpoint("runs/ecg/best.ckpt", "ecg.onnx")  # doctest: +SKIP
    PosixPath('ecg.onnx')
"""

from __future__ import annotations

from pathlib import Path

from mayo_dx.errors import ArtifactError, MissingDependency

__all__ = ["export_checkpoint"]


def export_checkpoint(checkpoint: str | Path, output: str | Path, *, parity_data: str | Path | None = None,
                      generated: int = 8, opset: int = 17, atol: float = 1e-4, rtol: float = 1e-4) -> Path:
    """Export a trained checkpoint to ``output`` (an ``.onnx`` file for ECG models).

    Args:
        checkpoint: Lightning ``.ckpt`` written by the mayo-dx training layer.
        output: Artifact path.
        parity_data: Folder with the ``shared/data/ecg`` layout (default: beside the project).
        generated: Generated records added to the parity inputs.
        opset: ONNX opset (>= 17).
        atol: Absolute parity tolerance.
        rtol: Relative parity tolerance.

    Raises:
        MissingDependency: The training layer is not installed.
        ArtifactError: Unsupported task, checker failure, or parity failure
            (:class:`~mayo_dx.errors.ExportParityError`).

    Example:
        >>> export_checkpoint("best.ckpt", "model.onnx", generated=4)  # doctest: +SKIP
    """
    try:
        from mayo_dx.training.checkpoint import load_trained
    except ImportError as error:
        raise MissingDependency("export needs the training layer: pip install 'mayo-dx[train]'") from error
    from mayo_dx.export.onnx import export_model
    from mayo_dx.export.parity import default_ecg_records, ecg_parity_inputs

    net, card = load_trained(Path(checkpoint))
    if card.task != "ecg":
        raise ArtifactError(f"export of task {card.task!r} checkpoints goes through export_stages; not this command")
    inputs = ecg_parity_inputs(card, default_ecg_records(parity_data), generated=generated)
    return export_model(net, card, output, parity_inputs=inputs, opset=opset, atol=atol, rtol=rtol)
