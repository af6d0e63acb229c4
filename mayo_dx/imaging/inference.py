"""Sliding-window inference in numpy with Gaussian blending: the runtime twin of MONAI's inferer.

:func:`sliding_window_predict` cuts a ``[channels, z, y, x]`` array into overlapping patches,
runs a caller-supplied ``run_patch`` on each (an onnxruntime session in the runtime, a torch
network in tests), and blends the outputs with a Gaussian importance map. It follows
``monai.inferers.sliding_window_inference`` step for step, so the same network gives the same
output (within float32 rounding, tested at 1e-4):

* an axis shorter than the patch is padded symmetrically with ``cval`` (extra voxel after),
  and the padding is cut from the output;
* the scan step per axis is ``int(patch * (1 - overlap))`` (at least 1; the whole axis when the
  patch equals it); the last window is shifted back to end at the border;
* the Gaussian map has ``sigma = sigma_scale * patch`` per axis, centred on the patch, with
  weights below ``max(min, 1e-3)`` raised to that floor; ``mode="constant"`` weighs all voxels 1;
* outputs are summed with their weights and divided by the summed weights.

Runtime layer: numpy only.

Example:
    >>> volume = np.random.default_rng(0).normal(size=(1, 20, 24, 24)).astype(np.float32)
    >>> output = sliding_window_predict(volume, lambda patch: patch * 2.0, (16, 16, 16))
    >>> output.shape, bool(np.allclose(output, volume * 2.0, atol=1e-5))
    ((1, 20, 24, 24), True)
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from mayo_dx.errors import InputError

__all__ = ["importance_map", "sliding_window_predict", "window_slices"]


def importance_map(patch_size: Sequence[int], mode: str = "gaussian", sigma_scale: float | Sequence[float] = 0.125) -> np.ndarray:
    """Blending weights of one patch: a separable Gaussian (floored at ``1e-3``) or all ones.

    Example:
        >>> weights = importance_map((5, 5, 5))
        >>> weights.shape, float(weights[2, 2, 2]), float(weights.min()) >= 1e-3
        ((5, 5, 5), 1.0, True)
    """
    patch_size = tuple(int(size) for size in patch_size)
    if mode == "constant":
        return np.ones(patch_size, dtype=np.float32)
    if mode != "gaussian":
        raise ValueError(f"mode must be 'gaussian' or 'constant', got {mode!r}")
    scales = [float(sigma_scale)] * len(patch_size) if np.isscalar(sigma_scale) else [float(s) for s in sigma_scale]  # type: ignore[arg-type]
    weights = np.ones((), dtype=np.float32)
    for axis, (size, scale) in enumerate(zip(patch_size, scales)):
        position = np.arange(-(size - 1) / 2.0, (size - 1) / 2.0 + 1, dtype=np.float32)[:size]
        sigma = np.float32(size * scale)
        profile = np.exp(position**2 / (np.float32(-2.0) * sigma**2)).astype(np.float32)
        weights = weights[..., None] * profile if axis else profile
    floor = max(float(weights.min()), 1e-3)
    return np.maximum(weights, np.float32(floor)).astype(np.float32)


def window_slices(image_size: Sequence[int], patch_size: Sequence[int], overlap: float = 0.5) -> list[tuple[slice, ...]]:
    """The windows (one slice per axis) covering ``image_size``, in MONAI's order.

    ``image_size`` must be at least ``patch_size`` on every axis (pad first).

    Example:
        >>> [tuple((s.start, s.stop) for s in window) for window in window_slices((10,), (4,), 0.5)]
        [((0, 4),), ((2, 6),), ((4, 8),), ((6, 10),)]
    """
    if not 0 <= overlap < 1:
        raise ValueError(f"overlap must lie in [0, 1), got {overlap}")
    starts_per_axis = []
    for image, patch in zip(image_size, patch_size):
        if patch > image:
            raise InputError(f"patch {tuple(patch_size)} is larger than the image {tuple(image_size)}; pad first")
        step = patch if patch == image else max(int(patch * (1 - overlap)), 1)
        count = 1
        for index in range(int(math.ceil(image / step))):
            if index * step + patch >= image:
                count = index + 1
                break
        starts_per_axis.append([min(index * step, image - patch) for index in range(count)])
    grids = np.meshgrid(*starts_per_axis, indexing="ij")
    starts = np.stack([grid.ravel() for grid in grids], axis=1)
    return [tuple(slice(int(start), int(start) + int(patch)) for start, patch in zip(row, patch_size)) for row in starts]


def sliding_window_predict(
    volume: np.ndarray,
    run_patch: Callable[[np.ndarray], np.ndarray],
    patch_size: Sequence[int],
    overlap: float = 0.5,
    mode: str = "gaussian",
    sigma_scale: float | Sequence[float] = 0.125,
    cval: float = 0.0,
) -> np.ndarray:
    """Run ``run_patch`` over overlapping windows of ``volume`` and blend the outputs.

    Args:
        volume: ``[channels, z, y, x]`` float array (preprocessed model input).
        run_patch: Maps one ``[channels, *patch_size]`` patch to ``[out_channels, *patch_size]``
            (e.g. a closure over an onnxruntime session adding and removing the batch axis;
            it may also collect per-window outputs such as a case logit).
        patch_size: Window size ``(z, y, x)`` (the model's training patch).
        overlap: Fraction of a window shared with its neighbour, in ``[0, 1)``.
        mode: ``"gaussian"`` (centre-weighted) or ``"constant"``.
        sigma_scale: Gaussian sigma as a fraction of the patch size (per axis or one number).
        cval: Value padded where an axis is shorter than the patch.

    Returns:
        float32 ``[out_channels, z, y, x]`` on the input grid.

    Raises:
        InputError: If ``volume`` is not 4-D or ``run_patch`` returns a wrong shape.

    Example:
        >>> volume = np.ones((1, 8, 8, 8), np.float32)
        >>> round(float(sliding_window_predict(volume, lambda patch: patch[:1] * 3, (16, 16, 16)).max()), 5)
        3.0
    """
    volume = np.asarray(volume, dtype=np.float32)
    patch_size = tuple(int(size) for size in patch_size)
    if volume.ndim != 4 or len(patch_size) != 3:
        raise InputError(f"volume must be [channels, z, y, x] and patch_size (z, y, x); got {volume.shape}, {patch_size}")
    original = volume.shape[1:]
    padding = [(max(patch - size, 0) // 2, max(patch - size, 0) - max(patch - size, 0) // 2) for size, patch in zip(original, patch_size)]
    if any(sum(pair) for pair in padding):
        volume = np.pad(volume, [(0, 0), *padding], mode="constant", constant_values=cval)
    image_size = volume.shape[1:]
    weights = importance_map(patch_size, mode, sigma_scale)
    output: np.ndarray | None = None
    counts = np.zeros(image_size, dtype=np.float32)
    for window in window_slices(image_size, patch_size, overlap):
        result = np.asarray(run_patch(np.ascontiguousarray(volume[(slice(None), *window)])), dtype=np.float32)
        if result.ndim != 4 or result.shape[1:] != patch_size:
            raise InputError(f"run_patch must return [channels, *{patch_size}], got {result.shape}")
        if output is None:
            output = np.zeros((result.shape[0], *image_size), dtype=np.float32)
        output[(slice(None), *window)] += result * weights
        counts[window] += weights
    assert output is not None  # at least one window always exists
    output /= counts
    crop = tuple(slice(before, before + size) for (before, _), size in zip(padding, original))
    return np.ascontiguousarray(output[(slice(None), *crop)])
