"""CT datasets and the Lightning DataModule (training layer).

* :class:`CtPatchDataset` (training): random patches read from the memory-mapped cache
  (:class:`~mayo_dx.imaging.data_cache.VolumeCache`); with probability
  ``foreground_probability`` the patch centre lies in the gland box (or, for cancer cases of the
  analyser, in the lesion box), otherwise anywhere; then MONAI dictionary augmentations.
* :class:`CtVolumeDataset` (validation/test): whole cached volumes, for
  ``monai.inferers.sliding_window_inference``.
* :class:`CtDataModule`: one class for both stages over a Decathlon folder or a manifest CSV;
  seeded stratified train/validation/test split; the cache is built in ``prepare_data`` (rank 0).

Augmentation (training only, :class:`Augmentation`): random affine (rotation, scaling; image
linear, labels nearest), intensity scale and shift, Gaussian noise, contrast (gamma).

Batches are dicts: ``image`` float32 ``[b, 1, z, y, x]``, ``label`` int64 ``[b, 1, z, y, x]``
(-1 where a case has no label map), ``case`` float32 ``[b, 1]`` (patch-level for the analyser:
1 when the patch holds lesion voxels), ``has_labels`` bool ``[b]``, ``lesion_diameter_mm``.

Example:
    >>> Augmentation(probability=0.0).build() is None
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning
import numpy as np
import torch
from monai import transforms
from torch.utils.data import DataLoader, Dataset

from mayo_dx.errors import InputError
from mayo_dx.imaging.data_cache import CtCase, VolumeCache, cases_from_manifest, cases_from_msd, split_cases
from mayo_dx.imaging.msd import read_msd_dataset
from mayo_dx.imaging.phantom_io import write_msd_pancreas
from mayo_dx.imaging.resample import CtPreprocessing

__all__ = ["Augmentation", "CtDataModule", "CtPatchDataset", "CtVolumeDataset", "PhantomData"]


@dataclass(frozen=True)
class Augmentation:
    """Training augmentations (each applied with ``probability``; 0 switches all off).

    Attributes:
        probability: Chance of each transform per sample.
        rotate_degrees: Largest rotation about each axis.
        scale_range: Largest relative zoom change (0.1: 0.9-1.1).
        intensity_scale: Largest relative intensity scaling.
        intensity_shift: Largest intensity shift (windowed units, 0-1 range).
        noise_std: Standard deviation of added Gaussian noise (windowed units).
        gamma_range: Contrast adjustment gamma range.

    Example:
        >>> type(Augmentation().build()).__name__
        'Compose'
    """

    probability: float = 0.2
    rotate_degrees: float = 10.0
    scale_range: float = 0.1
    intensity_scale: float = 0.1
    intensity_shift: float = 0.1
    noise_std: float = 0.02
    gamma_range: tuple[float, float] = (0.8, 1.25)

    def build(self) -> Callable[[dict[str, Any]], dict[str, Any]] | None:
        """The MONAI ``Compose`` of dictionary transforms, or None when switched off."""
        if self.probability <= 0:
            return None
        angle = math.radians(self.rotate_degrees)
        chance = self.probability
        return transforms.Compose([
            transforms.RandAffined(keys=("image", "label"), prob=chance, rotate_range=(angle, angle, angle),
                                   scale_range=(self.scale_range,) * 3, mode=("bilinear", "nearest"),
                                   padding_mode="border"),
            transforms.RandScaleIntensityd(keys="image", factors=self.intensity_scale, prob=chance),
            transforms.RandShiftIntensityd(keys="image", offsets=self.intensity_shift, prob=chance),
            transforms.RandGaussianNoised(keys="image", std=self.noise_std, prob=chance),
            transforms.RandAdjustContrastd(keys="image", gamma=tuple(self.gamma_range), prob=chance),
        ])


def _read_patch(array: np.ndarray, start: Sequence[int], size: Sequence[int], fill: float) -> np.ndarray:
    """Copy ``array[start:start+size]`` (only those pages of a memmap), padding outside with ``fill``."""
    output = np.full(tuple(size), fill, dtype=array.dtype)
    begin = np.clip(start, 0, array.shape)
    end = np.clip(np.add(start, size), 0, array.shape)
    if np.all(end > begin):
        target = tuple(slice(b - s, e - s) for b, e, s in zip(begin, end, start))
        output[target] = array[tuple(slice(b, e) for b, e in zip(begin, end))]
    return output


@dataclass(frozen=True)
class PhantomData:
    """Generate a Decathlon-shaped phantom folder on first use (configs for generated data).

    Attributes:
        n_cases: Labelled cases (``imagesTr``/``labelsTr``).
        seed: Seed of the whole dataset.
        shape: Matrix ``(z, y, x)`` of every case.
        cancer_fraction: Share of cases with one lesion.

    Example:
        >>> PhantomData(n_cases=8, shape=(32, 64, 64)).n_cases
        8
    """

    n_cases: int = 40
    seed: int = 0
    shape: tuple[int, int, int] = (64, 128, 128)
    cancer_fraction: float = 0.5

    def ensure(self, folder: str | Path) -> None:
        """Write the folder unless its ``dataset.json`` exists."""
        if not (Path(folder) / "dataset.json").is_file():
            write_msd_pancreas(folder, self.n_cases, seed=self.seed, n_test=1, shape=tuple(self.shape),
                               cancer_fraction=self.cancer_fraction)


class CtPatchDataset(Dataset):
    """Random training patches from cached volumes (see module notes).

    Args:
        cache: The stage's cache.
        cases: Training cases.
        patch_size: ``(z, y, x)`` voxels.
        samples_per_case: Patches drawn per case per epoch.
        foreground_probability: Chance that a patch is centred in the gland (or lesion) box.
        augmentation: MONAI transform from :meth:`Augmentation.build`, or None.
        seed: Base seed; patch ``index`` of epoch ``epoch`` uses ``(seed, epoch, index)``.

    Example:
        >>> dataset = CtPatchDataset(cache, cases, (32, 64, 64), samples_per_case=2)  # doctest: +SKIP
        >>> dataset[0]["image"].shape  # doctest: +SKIP
        torch.Size([1, 32, 64, 64])
    """

    def __init__(self, cache: VolumeCache, cases: Sequence[CtCase], patch_size: Sequence[int], samples_per_case: int = 1,
                 foreground_probability: float = 0.67, augmentation: Callable | None = None, seed: int = 0) -> None:
        self.cache, self.cases = cache, list(cases)
        self.patch_size = tuple(int(size) for size in patch_size)
        self.samples_per_case, self.foreground_probability = int(samples_per_case), float(foreground_probability)
        self.augmentation, self.seed, self.epoch = augmentation, int(seed), 0

    def __len__(self) -> int:
        return len(self.cases) * self.samples_per_case

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        image, labels, meta = self.cache.load(self.cases[index // self.samples_per_case])
        box = meta.get("foreground_box")
        if self.cache.stage == "analyser" and meta.get("lesion_box") and rng.random() < 0.5:
            box = meta["lesion_box"]
        if box is not None and rng.random() < self.foreground_probability:
            centre = [rng.integers(low, high) for low, high in zip(*box)]
        elif self.cache.stage == "analyser":  # the crop centre, jittered: the gland sits mid-crop at inference
            centre = [int(size // 2 + rng.integers(-size // 8, size // 8 + 1)) for size in image.shape]
        else:
            centre = [rng.integers(0, size) for size in image.shape]
        start = [int(c) - p // 2 for c, p in zip(centre, self.patch_size)]
        sample = {"image": _read_patch(image, start, self.patch_size, 0.0)[None]}
        sample["label"] = (_read_patch(labels, start, self.patch_size, 0)[None].astype(np.float32) if labels is not None
                           else np.full((1, *self.patch_size), -1, np.float32))
        if self.augmentation is not None:
            self.augmentation.set_random_state(seed=int(rng.integers(0, 2**31 - 1)))  # type: ignore[attr-defined]
            sample = self.augmentation(sample)
        label = torch.as_tensor(np.asarray(sample["label"])).round().long()
        has_labels = labels is not None
        case = float((label == 2).any()) if has_labels and self.cache.stage == "analyser" else float(meta["case_label"] or 0)
        return {"image": torch.as_tensor(np.asarray(sample["image"]), dtype=torch.float32), "label": label,
                "case": torch.tensor([case]), "has_labels": has_labels,
                "lesion_diameter_mm": float(meta["lesion_diameter_mm"] or 0.0)}


class CtVolumeDataset(Dataset):
    """Whole cached volumes (validation and test; batch size 1).

    Args:
        cache: The stage's cache.
        cases: Cases to serve.

    Example:
        >>> CtVolumeDataset(cache, cases)[0]["image"].shape[:1]  # doctest: +SKIP
        torch.Size([1])
    """

    def __init__(self, cache: VolumeCache, cases: Sequence[CtCase]) -> None:
        self.cache, self.cases = cache, list(cases)

    def __len__(self) -> int:
        return len(self.cases)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, labels, meta = self.cache.load(self.cases[index])
        label = (torch.from_numpy(np.array(labels, dtype=np.int64))[None] if labels is not None
                 else torch.full((1, *image.shape), -1, dtype=torch.int64))
        return {"image": torch.from_numpy(np.array(image, dtype=np.float32))[None], "label": label,
                "case": torch.tensor([float(meta["case_label"] or 0)]), "has_labels": labels is not None,
                "lesion_diameter_mm": float(meta["lesion_diameter_mm"] or 0.0)}


class CtDataModule(lightning.LightningDataModule):
    """Cases, split, cache and loaders for one CT stage.

    Args:
        stage: ``"localiser"`` or ``"analyser"``.
        cache_dir: Folder of the preprocessed-volume cache.
        preprocessing: The stage's preprocessing (written to the card).
        patch_size: Training patch and sliding-window size ``(z, y, x)`` voxels.
        msd_folder: A Decathlon Task07-shaped folder (its labelled cases are used).
        manifest: A manifest CSV (``image``, ``label``, ``cancer``, ``case_id``); instead of ``msd_folder``.
        batch_size: Training batch size.
        samples_per_case: Training patches per case per epoch.
        foreground_probability: Share of patches centred on the gland or lesion.
        augmentation: Training augmentations.
        context_mm: Analyser: extra room around the gland box (for jitter).
        validation_fraction: Share of cases for validation (stratified by case label).
        test_fraction: Share of cases held out for testing.
        split_seed: Seed of the split (same seed: same split for both stages).
        seed: Seed of patch sampling and augmentation.
        num_workers: DataLoader workers.
        localiser_checkpoint: Analyser: a trained stage-1 checkpoint that boxes cases without a label map.
        phantoms: Generate ``msd_folder`` with these settings when it has no ``dataset.json``.

    Example:
        >>> CtDataModule("localiser", "/tmp/cache", CtPreprocessing(), (32, 32, 32))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        mayo_dx.errors.InputError: give exactly one of msd_folder and manifest
    """

    def __init__(self, stage: str, cache_dir: str, preprocessing: CtPreprocessing, patch_size: Sequence[int],
                 msd_folder: str | None = None, manifest: str | None = None, batch_size: int = 2,
                 samples_per_case: int = 2, foreground_probability: float = 0.67,
                 augmentation: Augmentation = Augmentation(), context_mm: float = 0.0, validation_fraction: float = 0.2,
                 test_fraction: float = 0.0, split_seed: int = 0, seed: int = 0, num_workers: int = 0,
                 localiser_checkpoint: str | None = None, phantoms: PhantomData | None = None) -> None:
        super().__init__()
        if (msd_folder is None) == (manifest is None):
            raise InputError("give exactly one of msd_folder and manifest")
        self.stage, self.preprocessing = stage, preprocessing
        self.patch_size = tuple(int(size) for size in patch_size)
        self.msd_folder, self.manifest = msd_folder, manifest
        self.cache = VolumeCache(cache_dir, stage, preprocessing, context_mm)
        self.batch_size, self.samples_per_case = int(batch_size), int(samples_per_case)
        self.foreground_probability, self.augmentation = foreground_probability, augmentation
        self.fractions, self.split_seed, self.seed = (validation_fraction, test_fraction), split_seed, seed
        self.num_workers = int(num_workers)
        self.localiser_checkpoint, self.phantoms = localiser_checkpoint, phantoms
        if phantoms is not None and msd_folder is None:
            raise InputError("phantoms are written to msd_folder: give msd_folder")
        self.splits: dict[str, list[CtCase]] = {}
        self.train_dataset: CtPatchDataset | None = None

    def describe(self) -> dict[str, Any]:
        """What the card records about the data and this stage's input.

        ``data_source`` names where the cases came from (absolute paths on the training
        machine, and the phantom generator's settings when the folder was generated), so that
        INT8 calibration (:mod:`mayo_dx.export.quantize_ct`) can read the same cases later.
        """
        source = f"MSD folder {Path(self.msd_folder).name}" if self.msd_folder else f"manifest {Path(self.manifest).name}"  # type: ignore[arg-type]
        phantoms = None if self.phantoms is None else {
            "n_cases": int(self.phantoms.n_cases), "seed": int(self.phantoms.seed),
            "shape": [int(size) for size in self.phantoms.shape], "cancer_fraction": float(self.phantoms.cancer_fraction)}
        data_source = {"msd_folder": str(Path(self.msd_folder).resolve()) if self.msd_folder else None,
                       "manifest": str(Path(self.manifest).resolve()) if self.manifest else None, "phantoms": phantoms}
        return {"stage": self.stage, "source": source, "data_source": data_source, "patch_size": list(self.patch_size),
                "preprocessing": self.preprocessing.to_dict(), "context_mm": self.cache.context_mm,
                "cases": {name: len(part) for name, part in self.splits.items()}, "split_seed": self.split_seed,
                "split_fractions": list(self.fractions), "synthetic": self._synthetic(),
                "augmentation": {**self.augmentation.__dict__, "gamma_range": list(self.augmentation.gamma_range)}}

    def _synthetic(self) -> bool:
        """True for generated data: a Decathlon-shaped folder whose dataset.json says it is synthetic."""
        if self.msd_folder is None:
            return False
        dataset = read_msd_dataset(self.msd_folder, check_files=False)
        return "synthetic" in (dataset.description + str(dataset.fields.get("reference", ""))).lower()

    def _cases(self) -> dict[str, list[CtCase]]:
        if not self.splits:
            if self.phantoms is not None:
                self.phantoms.ensure(self.msd_folder)  # type: ignore[arg-type]
            cases = cases_from_msd(self.msd_folder) if self.msd_folder else cases_from_manifest(self.manifest)  # type: ignore[arg-type]
            self.splits = split_cases(cases, *self.fractions, seed=self.split_seed)
            if not self.splits["train"]:
                raise InputError("no training cases after the split")
        return self.splits

    def prepare_data(self) -> None:
        """Preprocess every case into the on-disk cache (skips cached ones)."""
        if self.stage == "analyser" and self.localiser_checkpoint and self.cache.box_provider is None:
            from mayo_dx.training.ct_checkpoint import load_stage  # training layer, only when needed
            from mayo_dx.training.ct_pipeline import box_provider

            net, entry = load_stage(self.localiser_checkpoint, "localiser")
            params = CtPreprocessing.from_dict(entry["data"]["preprocessing"])
            self.cache.box_provider = box_provider(net, params, entry["patch_size"], self.cache.context_mm)
        for part in self._cases().values():
            for case in part:
                self.cache.ensure(case)

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets over the cache (arrays stay on disk)."""
        splits = self._cases()
        self.train_dataset = CtPatchDataset(self.cache, splits["train"], self.patch_size, self.samples_per_case,
                                            self.foreground_probability, self.augmentation.build(), self.seed)

    def train_dataloader(self) -> DataLoader:
        """Shuffled patches (the task sets ``train_dataset.epoch`` each epoch to reseed sampling)."""
        assert self.train_dataset is not None, "call setup() first"
        generator = torch.Generator().manual_seed(self.seed)
        return DataLoader(self.train_dataset, batch_size=self.batch_size, shuffle=True, generator=generator,
                          num_workers=self.num_workers, persistent_workers=False)

    def val_dataloader(self) -> DataLoader:
        """Whole validation volumes, one per batch."""
        return DataLoader(CtVolumeDataset(self.cache, self._cases()["validation"]), batch_size=1,
                          num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        """Whole held-out volumes, one per batch."""
        return DataLoader(CtVolumeDataset(self.cache, self._cases()["test"]), batch_size=1, num_workers=self.num_workers)
