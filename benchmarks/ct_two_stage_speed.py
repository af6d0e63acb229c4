"""CPU time of the two-stage CT design on a 512 x 512 x 200 study vs a full-resolution sliding window.

Torch (training-layer) estimate for the design choice; the runtime's onnxruntime path measures
its own. Weights are random (speed does not depend on them): the localiser runs on the whole
volume at its spacing; the analyser on the crop around the phantom's true gland box (a trained
localiser gives a box of that size). The comparison is a DynUNet configured like nnU-Net's
Task07 3d_fullres plan (spacing 2.5 x 0.8 x 0.8 mm, patch 40 x 224 x 224, 32 base filters,
overlap 0.5): one window is timed and multiplied by the number of windows over the study.

    python benchmarks/ct_two_stage_speed.py --threads 2
    python benchmarks/ct_two_stage_speed.py --smoke
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from monai.networks.nets import DynUNet

from mayo_dx.imaging.data_cache import gland_world_box
from mayo_dx.imaging.inference import window_slices
from mayo_dx.imaging.nets import build_ct_analyser, build_ct_localiser
from mayo_dx.imaging.phantom import generate_phantom
from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct, resample
from mayo_dx.imaging.volume import Grid
from mayo_dx.training.ct_pipeline import analyse, localise


def _seconds(action) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict:
    """Run the timing; print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="a 64 x 128 x 128 study and tiny networks")
    arguments = parser.parse_args(argv)
    torch.set_num_threads(arguments.threads)
    shape = (64, 128, 128) if arguments.smoke else (200, 512, 512)
    phantom = generate_phantom(shape=shape, lesions=1, seed=4)
    volume = phantom.volume
    features = (4, 4, 8, 8, 16, 4) if arguments.smoke else (16, 16, 32, 64, 128, 16)
    localiser, analyser = build_ct_localiser(features=features).eval(), build_ct_analyser(features=features).eval()
    localiser_params = CtPreprocessing(target_spacing=(4.0, 4.0, 4.0))
    analyser_params = CtPreprocessing(target_spacing=(2.0, 1.0, 1.0))
    localiser_patch, analyser_patch = ((32, 64, 64), (32, 64, 64)) if arguments.smoke else ((48, 96, 96), (64, 128, 192))
    box = gland_world_box(phantom.labels, Grid.of(volume), 10.0)
    results = {"study_shape_zyx": list(shape), "spacing_zyx_mm": list(volume.spacing), "threads": arguments.threads}
    results["localiser_seconds"] = round(_seconds(lambda: localise(localiser, volume, localiser_params, localiser_patch)), 2)
    results["analyser_seconds"] = round(_seconds(lambda: analyse(analyser, volume, box, analyser_params, analyser_patch)), 2)
    crop, _ = preprocess_ct(volume, analyser_params, box=box)
    results["analyser_crop_zyx"] = list(crop.shape)
    results["two_stage_seconds"] = round(results["localiser_seconds"] + results["analyser_seconds"], 2)
    # Full-resolution baseline: nnU-Net-like DynUNet, one window timed, times the window count.
    patch = (16, 64, 64) if arguments.smoke else (40, 224, 224)
    kernels = [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]]
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2]]
    baseline = DynUNet(3, 1, 3, kernels, strides, strides[1:], filters=[32, 64, 128, 256, 320, 320],
                       norm_name="instance", res_block=False).eval()
    resampled, _ = resample(np.zeros(shape, np.float32), volume.spacing, (2.5, 0.8, 0.8), order=0)
    windows = len(window_slices(np.maximum(resampled.shape, patch), patch, 0.5))
    with torch.no_grad():
        baseline(torch.zeros(1, 1, *patch))  # warm-up
        one = _seconds(lambda: baseline(torch.zeros(1, 1, *patch)))
    results.update(baseline_grid_zyx=list(resampled.shape), baseline_windows=windows,
                   baseline_seconds_per_window=round(one, 2), baseline_seconds=round(one * windows, 1))
    results["speedup"] = round(results["baseline_seconds"] / results["two_stage_seconds"], 1)
    print(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
