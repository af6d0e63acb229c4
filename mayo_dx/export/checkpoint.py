"""``mayo-dx export``: a Lightning checkpoint to a verified ONNX artifact (training layer).

The checkpoint is opened with :func:`mayo_dx.training.checkpoint.load_trained` (network in eval
mode plus its card). ECG parity inputs are the real records (pydicom's ``waveform_ecg.dcm``
and ``shared/data/ecg`` when present) and generated ones, preprocessed with the card's own
parameters, fed both as sliding-window batches and as whole signals.

A CT model is two checkpoints: pass the analyser's (it holds the card) and ``localiser=``; the
export then goes through :func:`mayo_dx.export.ct.export_ct_checkpoints` into an artifact folder.

Example:
    >>> export_checkpoint("runs/ecg/best.ckpt", "ecg.onnx")  # doctest: +SKIP
    PosixPath('ecg.onnx')
"""

from __future__ import annotations

from pathlib import Path

from mayo_dx.errors import ArtifactError, MissingDependency

__all__ = ["export_checkpoint"]


def export_checkpoint(checkpoint: str | Path, output: str | Path, *, parity_data: str | Path | None = None,
                      generated: int | None = None, opset: int = 17, atol: float | None = None, rtol: float = 1e-4,
                      localiser: str | Path | None = None) -> Path:
    """Export a trained checkpoint to ``output`` (an ``.onnx`` file for ECG models, a folder for CT).

    Args:
        checkpoint: Lightning ``.ckpt`` written by the mayo-dx training layer (for CT: the analyser).
        output: Artifact path.
        parity_data: Folder with the ``shared/data/ecg`` (or, for CT, ``shared/data/ct``) layout
            (default: beside the project).
        generated: Generated records (ECG, default 8) or phantom studies (CT, default 2) added
            to the parity inputs.
        opset: ONNX opset (>= 17).
        atol: Absolute parity tolerance (default 1e-4; CT: :data:`mayo_dx.export.ct.CT_PARITY_ATOL`).
        rtol: Relative parity tolerance.
        localiser: The CT localiser checkpoint; given, ``checkpoint`` is the CT analyser.

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

    if localiser is not None:
        from mayo_dx.export.ct import CT_PARITY_ATOL, export_ct_checkpoints

        return export_ct_checkpoints(localiser, checkpoint, output, parity_data=parity_data,
                                     generated=2 if generated is None else generated, opset=opset,
                                     atol=CT_PARITY_ATOL if atol is None else atol, rtol=rtol)
    try:
        net, card = load_trained(Path(checkpoint))
    except ArtifactError as error:
        stage = _ct_stage(checkpoint)
        if stage is not None:
            raise ArtifactError(f"{Path(checkpoint).name} is a CT {stage} checkpoint: export a CT model with the "
                                "analyser checkpoint and --localiser LOCALISER.ckpt") from error
        raise
    if card.task != "ecg":
        raise ArtifactError(f"export of task {card.task!r} checkpoints goes through export_stages; not this command")
    inputs = ecg_parity_inputs(card, default_ecg_records(parity_data), generated=8 if generated is None else generated)
    return export_model(net, card, output, parity_inputs=inputs, opset=opset, atol=1e-4 if atol is None else atol,
                        rtol=rtol)


def _ct_stage(checkpoint: str | Path) -> str | None:
    """The CT stage a checkpoint was trained as, or None (not a CT checkpoint or unreadable)."""
    try:
        from mayo_dx.training.checkpoint import read_checkpoint

        entry = read_checkpoint(checkpoint).get("mayo_dx")
    except (ImportError, ArtifactError):
        return None
    return str(entry.get("stage")) if isinstance(entry, dict) and entry.get("task") == "ct" else None
