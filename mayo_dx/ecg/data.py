"""ECG datasets and the Lightning DataModule (training layer: imports torch and lightning).

The DataModule takes a record source (:mod:`mayo_dx.ecg.sources`), runs the shared
:func:`mayo_dx.ecg.signal.preprocess` on every record (through :mod:`mayo_dx.ecg.signal_cache`
so a cache on disk can stand in for re-reading), fits the per-lead mean and standard
deviation on the training split (``normalisation="global"``), and serves:

* training batches of random crops of ``window_samples`` (``{"signal": [batch, 12, window],
  "target": [batch, labels]}``);
* validation/test batches of every record cut by :func:`mayo_dx.ecg.signal.sliding_windows`
  (``{"signal": [windows, 12, window], "windows": [batch], "target": [batch, labels]}``), which
  the task aggregates per record, exactly as the runtime does from the model card.

Records are read one at a time (lazily from their files, or from the cache with ``os.pread``),
never the whole dataset in memory. :meth:`EcgDataModule.describe` gives the card's
``preprocessing`` and ``input_spec``; ``state_dict`` keeps the fitted statistics in checkpoints.

Example:
    >>> import tempfile
    >>> from mayo_dx.ecg.sources import SyntheticPtbxlSource
    >>> source = SyntheticPtbxlSource(Path(tempfile.mkdtemp()) / "synthetic", n_records=20)
    >>> data = EcgDataModule(source, batch_size=4)
    >>> data.setup("fit")
    >>> batch = next(iter(data.train_dataloader()))
    >>> tuple(batch["signal"].shape), data.num_labels
    ((4, 12, 250), 5)
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mayo_dx.ecg.record import STANDARD_LEADS
from mayo_dx.ecg.signal import EcgPreprocessing, crop_or_pad, fit_standardisation, sliding_windows
from mayo_dx.ecg.signal_cache import SignalCache, build_cache, finish_preprocessing, read_unnormalised
from mayo_dx.ecg.sources import RecordSource, RecordSplit
from mayo_dx.errors import InputError

__all__ = ["EcgDataModule", "EcgDataset", "RecordReader", "collate_windows"]


class RecordReader:
    """Unnormalised signals of one split: from a cache (``rows`` of it) or from the record files.

    Example:
        >>> reader = RecordReader([Path("../shared/data/ecg/ptbxl/00001_lr")], EcgPreprocessing())  # doctest: +SKIP
        >>> reader[0][0].shape  # doctest: +SKIP
        (12, 1000)
    """

    def __init__(
        self,
        paths: Sequence[Path],
        params: EcgPreprocessing,
        cache: SignalCache | None = None,
        rows: np.ndarray | None = None,
    ) -> None:
        self.paths, self.params, self.cache, self.rows = tuple(paths), params, cache, rows

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if self.cache is not None and self.rows is not None:
            return self.cache[int(self.rows[index])]
        return read_unnormalised(self.paths[index], self.params)


class EcgDataset(Dataset):
    """Preprocessed records of one split as random crops (``"crop"``) or all windows (``"windows"``).

    Args:
        reader: Gives ``(unnormalised float32 [12, samples], present-lead mask)`` per index.
        targets: 0/1 ``[records, labels]``.
        params: The preprocessing (normalisation applied here, as in ``preprocess``).
        mode: ``"crop"`` (training) or ``"windows"`` (validation, test, evaluation).
        window_samples: Crop/window length in samples.
        stride_samples: Window stride in samples (``"windows"`` mode).

    Example:
        >>> reader = [(np.zeros((12, 1000), np.float32), np.ones(12, bool))]
        >>> params = EcgPreprocessing(highpass_hz=None)
        >>> dataset = EcgDataset(reader, np.ones((1, 2)), params, mode="windows", window_samples=250, stride_samples=125)
        >>> tuple(dataset[0]["signal"].shape)
        (7, 12, 250)
    """

    def __init__(
        self, reader: Any, targets: np.ndarray, params: EcgPreprocessing, *, mode: Literal["crop", "windows"],
        window_samples: int, stride_samples: int,
    ) -> None:
        if mode not in ("crop", "windows"):
            raise ValueError(f"unknown mode {mode!r}")
        self.reader, self.targets, self.params = reader, np.asarray(targets, dtype=np.float32), params
        self.mode, self.window_samples, self.stride_samples = mode, int(window_samples), int(stride_samples)

    def __len__(self) -> int:
        return len(self.targets)

    def signal(self, index: int) -> np.ndarray:
        """The fully preprocessed ``[12, samples]`` signal of one record (what ``preprocess`` returns)."""
        values, present = self.reader[index]
        return finish_preprocessing(values, present, self.params)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        signal = self.signal(index)
        target = torch.from_numpy(self.targets[index])
        if self.mode == "windows":
            windows = sliding_windows(signal, self.window_samples, self.stride_samples)
            return {"signal": torch.from_numpy(np.ascontiguousarray(windows)), "target": target}
        spare = signal.shape[-1] - self.window_samples
        if spare < 0:
            crop = crop_or_pad(signal, self.window_samples, "start")
        else:
            start = int(torch.randint(0, spare + 1, (1,)).item())
            crop = signal[:, start : start + self.window_samples]
        return {"signal": torch.from_numpy(np.ascontiguousarray(crop)), "target": target}


def collate_windows(items: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Stack the windows of several records: ``signal [all windows, 12, window]``, ``windows`` per record.

    Example:
        >>> items = [{"signal": torch.zeros(3, 12, 5), "target": torch.ones(2)}] * 2
        >>> batch = collate_windows(items)
        >>> tuple(batch["signal"].shape), batch["windows"].tolist()
        ((6, 12, 5), [3, 3])
    """
    return {
        "signal": torch.cat([item["signal"] for item in items]),
        "windows": torch.tensor([len(item["signal"]) for item in items], dtype=torch.long),
        "target": torch.stack([item["target"] for item in items]),
    }


class EcgDataModule(pl.LightningDataModule):
    """Train/validation/test ECG data from one record source, preprocessed as the card says.

    Args:
        source: Where records and labels come from (PTB-XL, synthetic, CSV, WFDB headers).
        target_fs: Sampling rate the network sees (Hz); benchmark 100.
        highpass_hz, lowpass_hz, filter_order: Filters of ``preprocess`` (``None`` skips one).
        duration_s: Crop/pad every record to this length; ``None`` keeps each length.
        normalisation: ``"global"`` (per-lead mean/std fitted on the training split),
            ``"per_record"`` or ``"none"``.
        window_samples: Training crop and evaluation window (benchmark: 250 = 2.5 s at 100 Hz).
        stride_samples: Evaluation window stride (benchmark: 125 = 1.25 s).
        batch_size: Training records per batch (benchmark: 128).
        eval_batch_size: Records per validation/test batch (each gives several windows).
        num_workers: DataLoader worker processes.
        cache_dir: Folder for the preprocessed-signal cache (built once, read with ``pread``);
            ``None`` reads every record from its file each time it is used.
        cache_workers: Processes building the cache.
        standardisation_records: Fit mean/std on this many training records (``None``: all).

    Example:
        >>> data = EcgDataModule(PtbxlSource("/data/ptb-xl"), cache_dir="/tmp/cache")  # doctest: +SKIP
    """

    def __init__(
        self,
        source: RecordSource,
        target_fs: float = 100.0,
        highpass_hz: float | None = None,
        lowpass_hz: float | None = None,
        filter_order: int = 2,
        duration_s: float | None = None,
        normalisation: Literal["global", "per_record", "none"] = "global",
        window_samples: int = 250,
        stride_samples: int = 125,
        batch_size: int = 128,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        cache_dir: str | Path | None = None,
        cache_workers: int = 1,
        standardisation_records: int | None = None,
    ) -> None:
        super().__init__()
        if window_samples < 1 or stride_samples < 1 or batch_size < 1:
            raise InputError("window_samples, stride_samples and batch_size must be positive")
        self.source = source
        self.base = EcgPreprocessing(
            target_fs=float(target_fs), highpass_hz=highpass_hz, lowpass_hz=lowpass_hz, filter_order=filter_order,
            duration_s=duration_s, normalisation="none",
        )
        self.normalisation = normalisation
        self.window_samples, self.stride_samples = int(window_samples), int(stride_samples)
        self.batch_size = int(batch_size)
        self.eval_batch_size = int(eval_batch_size or max(1, batch_size // 4))
        self.num_workers, self.cache_workers = int(num_workers), int(cache_workers)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.standardisation_records = standardisation_records
        self.mean: tuple[float, ...] | None = None
        self.std: tuple[float, ...] | None = None
        self._splits: dict[str, RecordSplit] | None = None
        self._datasets: dict[str, EcgDataset] = {}

    # ------------------------------------------------------------------ labels (linked to the model)
    @property
    def label_names(self) -> list[str]:
        """Label names in network output order."""
        return [label.name for label in self.source.labels]

    @property
    def num_labels(self) -> int:
        """Number of network outputs."""
        return len(self.source.labels)

    @property
    def multi_label(self) -> bool:
        """Whether a record may carry several labels (sigmoid) or exactly one (softmax)."""
        return self.source.multi_label

    # ------------------------------------------------------------------ preprocessing
    @property
    def preprocessing(self) -> EcgPreprocessing:
        """The parameters every record goes through (fitted statistics included after ``setup``)."""
        if self.normalisation == "global":
            if self.mean is None or self.std is None:
                raise InputError("standardisation is not fitted yet: call setup() first")
            fitted = {"normalisation": "global", "mean": self.mean, "std": self.std}
            return EcgPreprocessing(**{**self.base.to_dict(), **fitted})
        return EcgPreprocessing(**{**self.base.to_dict(), "normalisation": self.normalisation})

    def splits(self) -> dict[str, RecordSplit]:
        """The source's splits (computed once)."""
        if self._splits is None:
            self._splits = self.source.splits()
            empty = [name for name in ("train", "validation") if not len(self._splits[name].paths)]
            if empty:
                raise InputError(f"the {' and '.join(empty)} split(s) of {type(self.source).__name__} hold no records")
        return self._splits

    def _all_paths(self) -> list[Path]:
        return [path for split in self.splits().values() for path in split.paths]

    def prepare_data(self) -> None:
        """Create the source's files if needed and build the signal cache (one process)."""
        self.source.prepare()
        if self.cache_dir is not None:
            build_cache(self.cache_dir, self._all_paths(), self.base, workers=self.cache_workers)

    def _readers(self) -> dict[str, RecordReader]:
        cache = None
        if self.cache_dir is not None:
            cache = SignalCache(build_cache(self.cache_dir, self._all_paths(), self.base, workers=self.cache_workers))
        readers, offset = {}, 0
        for name, split in self.splits().items():
            rows = np.arange(offset, offset + len(split.paths))
            readers[name] = RecordReader(split.paths, self.base, cache, rows)
            offset += len(split.paths)
        return readers

    def _standardisation_signals(self, reader: RecordReader) -> Iterator[np.ndarray]:
        indices = np.arange(len(reader))
        if self.standardisation_records is not None and self.standardisation_records < len(indices):
            indices = np.sort(np.random.default_rng(0).choice(indices, self.standardisation_records, replace=False))
        for index in indices:
            values, present = reader[int(index)]
            values = np.array(values, dtype=np.float64)
            values[~present] = np.nan
            yield values

    def setup(self, stage: str | None = None) -> None:
        """Fit the standardisation on the training split (unless restored) and build datasets."""
        readers = self._readers()
        if self.normalisation == "global" and self.mean is None:
            signals = self._standardisation_signals(readers["train"])
            self.mean, self.std = fit_standardisation(signals)  # type: ignore[arg-type]  # streamed, one at a time
        params = self.preprocessing
        for name, reader in readers.items():
            self._datasets[name] = EcgDataset(
                reader, self.splits()[name].targets, params, mode="crop" if name == "train" else "windows",
                window_samples=self.window_samples, stride_samples=self.stride_samples,
            )

    def dataset(self, split: str) -> EcgDataset:
        """The dataset of ``train`` (crops), ``validation`` or ``test`` (windows), after ``setup``."""
        if not self._datasets:
            self.setup()
        if split not in self._datasets:
            raise KeyError(f"unknown split {split!r}; choose train, validation or test")
        return self._datasets[split]

    def _loader(self, split: str, *, shuffle: bool) -> DataLoader:
        dataset = self.dataset(split)
        training = split == "train"
        return DataLoader(
            dataset,
            batch_size=self.batch_size if training else self.eval_batch_size,
            shuffle=shuffle,
            drop_last=training and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            collate_fn=None if training else collate_windows,
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled random crops of the training split."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """All windows of the validation split."""
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        """All windows of the test split."""
        return self._loader("test", shuffle=False)

    def evaluation_dataloader(self, split: str) -> DataLoader:
        """Windows of any split (``train`` included) in a single process, for calibration and evaluation."""
        base = self.dataset(split)
        dataset = EcgDataset(base.reader, base.targets, base.params, mode="windows",
                             window_samples=self.window_samples, stride_samples=self.stride_samples)
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, collate_fn=collate_windows)

    # ------------------------------------------------------------------ card and checkpoint
    def input_spec(self, aggregation: str) -> dict[str, Any]:
        """The card's ``input_spec`` for a network whose window logits are aggregated by ``aggregation``."""
        return {
            "leads": list(STANDARD_LEADS),
            "sampling_rate": float(self.base.target_fs or 0.0),
            "window_samples": self.window_samples,
            "stride_samples": self.stride_samples,
            "aggregation": aggregation,
            "multi_label": self.multi_label,
            "min_duration_s": self.window_samples / float(self.base.target_fs or 1.0),
        }

    def describe(self) -> dict[str, Any]:
        """JSON description stored in checkpoints: source, labels, preprocessing, windows, data text."""
        return {
            "source": self.source.to_dict(),
            "labels": [asdict(label) for label in self.source.labels],
            "multi_label": self.multi_label,
            "preprocessing": self.preprocessing.to_dict(),
            "window_samples": self.window_samples,
            "stride_samples": self.stride_samples,
            "training_data": self.source.description,
            "synthetic": bool(self.source.synthetic),
        }

    def state_dict(self) -> dict[str, Any]:
        """Fitted standardisation (restored on resume, so it is never refitted differently)."""
        if self.mean is None or self.std is None:
            return {"mean": None, "std": None}
        return {"mean": list(self.mean), "std": list(self.std)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the statistics written by :meth:`state_dict`."""
        if state_dict.get("mean") is not None:
            self.mean, self.std = tuple(state_dict["mean"]), tuple(state_dict["std"])
            self._datasets = {}
