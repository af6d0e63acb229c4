"""CT export: the localiser and analyser checkpoints to one verified two-stage artifact folder.

Training layer. :func:`export_ct_checkpoints` opens both checkpoints with
:func:`mayo_dx.training.ct_checkpoint.load_trained_ct` and calls :func:`export_ct`, which
writes ``localiser.onnx``, ``analyser.onnx``, ``card.json`` and ``manifest.json`` through
:func:`mayo_dx.export.onnx.export_stages` (``onnx.checker`` and torch vs onnxruntime parity
on every input, atol 1e-4 and rtol 1e-4: see below).

Tolerance: onnxruntime's float32 instance-norm statistics alone cost up to 1e-3 on a trained
3-D U-Net's logits; the export therefore writes instance norms with float64 statistics
(:mod:`mayo_dx.export.precise_norm`), which keeps CT stages within the ECG bound (atol 1e-4;
measured about 3e-6).

Graphs: input ``"image"`` float32 ``[batch, 1, *patch_size]`` with a dynamic batch and the
spatial axes fixed to the card's patch (the runtime feeds only patch-sized windows); the
localiser gives ``"logits"`` ``[batch, 2, *patch]``, the analyser ``"segmentation"``
``[batch, 3, *patch]`` and ``"case_logit"`` ``[batch, 1]``.

Parity inputs (:func:`ct_parity_inputs`) are windows of real and generated studies
preprocessed exactly as the runtime does: each stage's :class:`CtPreprocessing` from the card,
the localiser on the whole volume, the analyser on the gland box (from the label map when one
is known, else the middle of the volume) widened by ``context_mm``; two windows per study in
one batch (proving the dynamic batch), plus one random-normal window per stage. Real studies:
``shared/data/ct/totalseg_dicom`` (20 contrast CT slices, labels in ``totalseg_nifti``) and
``totalseg_nifti/example_ct_sm.nii.gz`` when present; generated: phantoms with and without a
lesion (:func:`mayo_dx.imaging.phantom.generate_phantom`).

Example:
    >>> export_ct_checkpoints("runs/loc/best.ckpt", "runs/ana/best.ckpt", "models/ct_pancreas")  # doctest: +SKIP
    PosixPath('models/ct_pancreas')
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError, InputError
from mayo_dx.imaging.data_cache import WorldBox, gland_world_box
from mayo_dx.imaging.inference import window_slices
from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct
from mayo_dx.imaging.volume import CtVolume, Grid

__all__ = ["CtStudy", "ct_parity_inputs", "default_ct_studies", "export_ct", "export_ct_checkpoints",
           "generated_ct_studies"]

#: Default absolute parity tolerance of CT stages (see the module docstring).
CT_PARITY_ATOL = 1e-4

logger = logging.getLogger(__name__)

#: Pancreas label of the TotalSegmentator label maps in ``shared/data/ct``.
TOTALSEG_PANCREAS = 7


@dataclass(frozen=True, eq=False)
class CtStudy:
    """A study used for parity: its volume and, when known, a gland mask on its grid.

    Example:
        >>> CtStudy("empty", CtVolume(np.zeros((4, 4, 4), np.int16), (1.0, 1.0, 1.0))).gland is None
        True
    """

    name: str
    volume: CtVolume
    gland: np.ndarray | None = None


def _shared_ct_folder() -> Path:
    return Path(__file__).resolve().parents[2].parent / "shared" / "data" / "ct"


def default_ct_studies(data_folder: str | Path | None = None) -> list[CtStudy]:
    """The real parity studies present under ``shared/data/ct`` (missing or unreadable ones are skipped).

    Example:
        >>> default_ct_studies("/nonexistent")
        []
    """
    from mayo_dx.imaging.nifti import read_nifti_labels
    from mayo_dx.imaging.read import read_series

    folder = Path(data_folder) if data_folder is not None else _shared_ct_folder()
    candidates = [("totalseg_dicom", folder / "totalseg_dicom", folder / "totalseg_nifti" / "example_seg_dicom.nii.gz"),
                  ("totalseg_nifti", folder / "totalseg_nifti" / "example_ct_sm.nii.gz",
                   folder / "totalseg_nifti" / "example_seg.nii.gz")]
    studies = []
    for name, image, labels in candidates:
        if not image.exists():
            logger.info("parity study %s not present; skipped", name)
            continue
        try:
            volume = read_series(image)
            gland = read_nifti_labels(labels, like=volume) == TOTALSEG_PANCREAS if labels.is_file() else None
        except InputError as error:
            logger.warning("parity study %s unreadable: %s", name, error)
            continue
        studies.append(CtStudy(name, volume, gland if gland is not None and gland.any() else None))
    return studies


def generated_ct_studies(count: int = 2, *, shape: Sequence[int] = (64, 128, 128), seed: int = 0) -> list[CtStudy]:
    """Phantom studies, every other one with a lesion, with their gland masks.

    Example:
        >>> [study.name for study in generated_ct_studies(1, shape=(16, 32, 32))]
        ['phantom_0']
    """
    from mayo_dx.imaging.phantom import generate_phantom

    studies = []
    for index in range(count):
        phantom = generate_phantom(shape=tuple(shape), seed=seed + index, lesions=index % 2)  # type: ignore[arg-type]
        studies.append(CtStudy(f"phantom_{index}", phantom.volume, phantom.labels > 0))
    return studies


def _pick_windows(array: np.ndarray, patch: Sequence[int], overlap: float, pad_value: float, count: int) -> np.ndarray:
    """``count`` windows ``[count, 1, *patch]`` nearest the array's centre, padded as the runtime pads."""
    padding = [(max(p - s, 0) // 2, max(p - s, 0) - max(p - s, 0) // 2) for s, p in zip(array.shape, patch)]
    padded = np.pad(array, padding, constant_values=pad_value) if any(sum(pair) for pair in padding) else array
    windows = window_slices(padded.shape, patch, overlap)
    centre = np.asarray(padded.shape) / 2.0
    distance = [float(np.sum((np.array([(s.start + s.stop) / 2 for s in window]) - centre) ** 2)) for window in windows]
    chosen = [windows[index] for index in np.argsort(distance, kind="stable")[:count]]
    return np.stack([padded[window][None] for window in chosen]).astype(np.float32)


def _middle_box(volume: CtVolume) -> WorldBox:
    grid = Grid.of(volume)
    shape = np.asarray(grid.shape)
    corners = grid.index_to_world(np.stack([np.floor(shape * 0.25), np.ceil(shape * 0.75) - 1]))
    return tuple(corners.min(axis=0).tolist()), tuple(corners.max(axis=0).tolist())  # type: ignore[return-value]


def ct_parity_inputs(card: ModelCard, stage: str, studies: Iterable[CtStudy], *, windows: int = 2,
                     random_windows: int = 1, seed: int = 0) -> list[np.ndarray]:
    """Network inputs of one stage for parity, preprocessed per the card as the runtime does.

    Args:
        card: A CT card (contract in ``notes/ct_card_contract.md``).
        stage: ``"localiser"`` or ``"analyser"``.
        studies: Real and generated studies (:func:`default_ct_studies`, :func:`generated_ct_studies`).
        windows: Windows per study, batched together.
        random_windows: Random-normal windows added as one more input (0 for none).
        seed: Seed of the random windows.

    Returns:
        float32 arrays ``[batch, 1, *patch_size]``.

    Example:
        >>> [item.shape for item in ct_parity_inputs(card, "localiser", generated_ct_studies(1))]  # doctest: +SKIP
        [(2, 1, 32, 64, 64), (1, 1, 32, 64, 64)]
    """
    spec = card.input_spec[stage]
    params = CtPreprocessing.from_dict(card.preprocessing[stage])
    patch = [int(size) for size in spec["patch_size"]]
    overlap, pad = float(spec.get("overlap", 0.5)), float(spec.get("pad_value", 0.0))
    context = float(card.input_spec["analyser"].get("context_mm", 0.0))
    inputs = []
    for study in studies:
        box = None
        if stage == "analyser":
            grid = Grid.of(study.volume)
            box = gland_world_box(study.gland, grid, context) if study.gland is not None else None
            box = box if box is not None else _middle_box(study.volume)
        try:
            array, _ = preprocess_ct(study.volume, params, box=box)
        except InputError as error:
            logger.warning("parity study %s skipped for the %s: %s", study.name, stage, error)
            continue
        inputs.append(_pick_windows(array, patch, overlap, pad, windows))
    if random_windows:
        rng = np.random.default_rng(seed)
        inputs.append(rng.normal(0.5, 0.5, size=(random_windows, 1, *patch)).astype(np.float32))
    return inputs


def export_ct(localiser: Any, analyser: Any, card: ModelCard, output: str | Path, studies: Sequence[CtStudy], *,
              opset: int = 17, atol: float = CT_PARITY_ATOL, rtol: float = 1e-4) -> Path:
    """Export the two CT networks and the card as an artifact folder, parity-checked on ``studies``.

    Raises:
        ArtifactError: Not a CT card, a checker failure, or a parity failure
            (:class:`~mayo_dx.errors.ExportParityError`; nothing is written then).

    Example:
        >>> export_ct(localiser, analyser, card, "models/ct", generated_ct_studies(2))  # doctest: +SKIP
        PosixPath('models/ct')
    """
    from mayo_dx.export.onnx import ExportStage, export_stages

    if card.task != "ct":
        raise ArtifactError(f"export_ct needs a CT card, got task {card.task!r}")
    stages = []
    for name, net, outputs in (("localiser", localiser, ("logits",)), ("analyser", analyser, ("segmentation", "case_logit"))):
        inputs = ct_parity_inputs(card, name, studies)
        stages.append(ExportStage(name=name, net=net, parity_inputs=[inputs[-1], *inputs[:-1]], output_names=outputs,
                                  dynamic_axes={0: "batch"},
                                  extra={"patch_size": list(card.input_spec[name]["patch_size"]),
                                         "parity_studies": [study.name for study in studies]}))
    return export_stages(stages, card, output, opset=opset, atol=atol, rtol=rtol)


def export_ct_checkpoints(localiser_checkpoint: str | Path, analyser_checkpoint: str | Path, output: str | Path, *,
                          parity_data: str | Path | None = None, generated: int = 2, opset: int = 17,
                          atol: float = CT_PARITY_ATOL, rtol: float = 1e-4) -> Path:
    """Export a trained CT model from its two checkpoints (see the module docstring).

    Args:
        localiser_checkpoint: Stage-1 ``.ckpt``.
        analyser_checkpoint: Stage-2 ``.ckpt`` holding the card.
        output: Artifact folder.
        parity_data: Folder with the ``shared/data/ct`` layout (default: beside the project).
        generated: Generated phantom studies added to the parity inputs.
        opset: ONNX opset (>= 17).
        atol: Absolute parity tolerance.
        rtol: Relative parity tolerance.

    Example:
        >>> export_ct_checkpoints("loc.ckpt", "ana.ckpt", "models/ct_pancreas", generated=1)  # doctest: +SKIP
    """
    from mayo_dx.training.ct_checkpoint import load_trained_ct

    localiser, analyser, card = load_trained_ct(localiser_checkpoint, analyser_checkpoint)
    studies = default_ct_studies(parity_data) + generated_ct_studies(generated)
    return export_ct(localiser, analyser, card, output, studies, opset=opset, atol=atol, rtol=rtol)
