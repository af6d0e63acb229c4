"""The two-stage CT pipeline in torch: localise the pancreas, then analyse a crop around it.

The same steps as the runtime (numpy preprocessing from the card, sliding windows, argmax), with
torch networks; training uses it to evaluate held-out cases end to end and to give unlabelled
cases a crop box.

1. :func:`localise`: ``preprocess_ct`` at the localiser's spacing, sliding-window segmentation,
   the largest connected gland component, its box in LPS mm widened by ``context_mm`` (the
   same room the analyser's training crops had); None when nothing is found.
2. :func:`analyse`: ``preprocess_ct`` at the analyser's spacing cropped to that box plus
   ``crop_margin_mm``; sliding-window segmentation and the max-over-windows case logit; the label
   map is mapped back onto the source grid with ``restore_labels``.

Example:
    >>> box = localise(localiser, volume, CtPreprocessing.from_dict(card.preprocessing["localiser"]), (32, 64, 64))  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from scipy import ndimage
from torch import nn

from mayo_dx.imaging.data_cache import WorldBox, gland_world_box
from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct, restore_labels
from mayo_dx.imaging.volume import CtVolume
from mayo_dx.training.segmentation import sliding_window_case

__all__ = ["analyse", "box_provider", "largest_component", "localise"]


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (empty stays empty).

    Example:
        >>> mask = np.zeros((1, 1, 7), bool); mask[0, 0, [0, 2, 3, 4]] = True
        >>> largest_component(mask)[0, 0].astype(int).tolist()
        [0, 0, 1, 1, 1, 0, 0]
    """
    components, count = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if count <= 1:
        return components > 0
    sizes = np.bincount(components.ravel())[1:]
    return components == (int(np.argmax(sizes)) + 1)


@torch.no_grad()
def localise(localiser: nn.Module, volume: CtVolume, preprocessing: CtPreprocessing, patch_size: Sequence[int],
             overlap: float = 0.5, context_mm: float = 0.0) -> WorldBox | None:
    """Find the gland with the stage-1 network; return its LPS box (mm) or None.

    Example:
        >>> localise(net, volume, CtPreprocessing(target_spacing=(4.0, 4.0, 4.0)), (32, 64, 64))  # doctest: +SKIP
        ((-60.1, ...), (...))
    """
    localiser.eval()
    array, geometry = preprocess_ct(volume, preprocessing)
    logits, _ = sliding_window_case(localiser, torch.from_numpy(array)[None, None], patch_size, overlap)
    gland = largest_component(logits[0].argmax(dim=0).numpy() > 0)
    return gland_world_box(gland, geometry.target, context_mm)


@torch.no_grad()
def analyse(analyser: nn.Module, volume: CtVolume, box: WorldBox, preprocessing: CtPreprocessing,
            patch_size: Sequence[int], overlap: float = 0.5) -> tuple[np.ndarray, float]:
    """Segment pancreas and lesion in the crop and give the case logit.

    Returns:
        ``(labels uint8 [z, y, x] on the source volume's grid, case logit)``.

    Example:
        >>> labels, logit = analyse(net, volume, box, CtPreprocessing(target_spacing=(2.0, 1.0, 1.0)), (64, 128, 192))  # doctest: +SKIP
    """
    analyser.eval()
    array, geometry = preprocess_ct(volume, preprocessing, box=box)
    logits, case = sliding_window_case(analyser, torch.from_numpy(array)[None, None], patch_size, overlap)
    labels = logits[0].argmax(dim=0).numpy().astype(np.uint8)
    return restore_labels(labels, geometry), float(case.reshape(-1)[0]) if case is not None else float("nan")


def box_provider(localiser: nn.Module, preprocessing: CtPreprocessing, patch_size: Sequence[int],
                 context_mm: float = 0.0) -> Callable[[CtVolume], WorldBox | None]:
    """A ``volume -> box`` function for :class:`~mayo_dx.imaging.data_cache.VolumeCache` (unlabelled cases).

    Example:
        >>> provider = box_provider(net, CtPreprocessing(), (32, 64, 64))  # doctest: +SKIP
    """
    return lambda volume: localise(localiser, volume, preprocessing, patch_size, context_mm=context_mm)
