"""Preprocessed ECG signals on disk, read one record at a time (never the whole set in RAM).

Training reads every record many times. :func:`build_cache` runs the shared
:func:`mayo_dx.ecg.signal.preprocess` once per record *without* its normalisation step and
writes the float32 results into one ``signals.npy`` (``[records, 12, samples]``) plus a
``present.npy`` mask of recorded leads. :class:`SignalCache` reads single records back with
``os.pread`` (no memory map, so the page cache never counts towards the process's resident
memory) and :func:`finish_preprocessing` applies the normalisation and missing-lead fill
exactly as :func:`~mayo_dx.ecg.signal.preprocess` does; the only difference is the float32
intermediate (below 1e-5 mV-equivalent after standardisation). ``signals.npy`` is a normal
NumPy file: ``numpy.load(path, mmap_mode="r")`` opens it too.

The cache folder is named by a hash of the record paths and the preprocessing parameters,
and a ``complete.json`` written last marks it finished; an interrupted build is redone.

Example:
    >>> import tempfile
    >>> from mayo_dx.ecg.record import EcgRecord
    >>> from mayo_dx.ecg.signal import EcgPreprocessing
    >>> record = EcgRecord(signal=np.zeros((12, 1000)), fs=100, missing_leads=("V6",))
    >>> values, present = unnormalised_signal(record, EcgPreprocessing(target_fs=100))
    >>> values.shape, bool(present[-1])
    ((12, 1000), False)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord
from mayo_dx.ecg.signal import EcgPreprocessing, normalise, preprocess
from mayo_dx.errors import InputError

__all__ = [
    "SignalCache",
    "build_cache",
    "cache_key",
    "finish_preprocessing",
    "read_unnormalised",
    "unnormalised_signal",
]


def _without_normalisation(params: EcgPreprocessing) -> EcgPreprocessing:
    return replace(params, normalisation="none", mean=None, std=None)


def unnormalised_signal(record: EcgRecord, params: EcgPreprocessing) -> tuple[np.ndarray, np.ndarray]:
    """``preprocess`` up to (not including) normalisation: float32 ``[12, samples]`` and the present-lead mask.

    Example:
        >>> record = EcgRecord(signal=np.ones((12, 200)), fs=100)
        >>> float(unnormalised_signal(record, EcgPreprocessing(highpass_hz=None))[0].max())
        1.0
    """
    values = preprocess(record, _without_normalisation(params))
    present = np.array([name not in record.missing_leads for name in STANDARD_LEADS])
    return values, present


def read_unnormalised(path: str | Path, params: EcgPreprocessing) -> tuple[np.ndarray, np.ndarray]:
    """Read one record with :func:`mayo_dx.ecg.io.read` and run :func:`unnormalised_signal`.

    Example:
        >>> read_unnormalised("../shared/data/ecg/ptbxl/00001_lr", EcgPreprocessing())[0].shape  # doctest: +SKIP
        (12, 1000)
    """
    from mayo_dx.ecg.io import read

    return unnormalised_signal(read(path), params)


def finish_preprocessing(values: np.ndarray, present: np.ndarray, params: EcgPreprocessing) -> np.ndarray:
    """Apply ``params``'s normalisation and missing-lead fill to an unnormalised signal.

    Together with :func:`unnormalised_signal` this equals :func:`~mayo_dx.ecg.signal.preprocess`.

    Example:
        >>> params = EcgPreprocessing(highpass_hz=None, normalisation="global", mean=(1.0,) * 12, std=(2.0,) * 12)
        >>> float(finish_preprocessing(np.full((12, 4), 3.0, np.float32), np.ones(12, bool), params)[0, 0])
        1.0
    """
    output = normalise(np.asarray(values, dtype=np.float64), params)
    output[~np.asarray(present, dtype=bool)] = params.missing_lead_fill
    return output.astype(np.float32)


def cache_key(paths: Sequence[str | Path], params: EcgPreprocessing) -> str:
    """Hash naming a cache: the record paths (in order) and the unnormalised preprocessing.

    Example:
        >>> cache_key(["a"], EcgPreprocessing()) == cache_key(["a"], EcgPreprocessing(normalisation="per_record"))
        True
    """
    content = {"paths": [str(path) for path in paths], "params": _without_normalisation(params).to_dict()}
    payload = json.dumps(content, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _read_job(job: tuple[str, dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    path, params = job
    return read_unnormalised(path, EcgPreprocessing.from_dict(params))


def build_cache(
    folder: str | Path, paths: Sequence[str | Path], params: EcgPreprocessing, *, workers: int = 1
) -> Path:
    """Preprocess ``paths`` once into ``folder/<key>/signals.npy``; reuse a complete cache.

    Args:
        folder: Parent folder of caches.
        paths: Records in the order the cache rows will follow.
        params: Preprocessing; its normalisation is ignored (applied when reading).
        workers: Processes reading records in parallel (1: in this process).

    Returns:
        The cache folder (open it with :class:`SignalCache`).

    Raises:
        InputError: Records differ in length (set ``duration_s`` to crop or pad them), or a
            record cannot be read (the message names it).

    Example:
        >>> build_cache("/tmp/caches", ["/data/ptb-xl/records100/00000/00001_lr"], EcgPreprocessing())  # doctest: +SKIP
    """
    if not paths:
        raise InputError("no records to cache")
    target = Path(folder) / cache_key(paths, params)
    if (target / "complete.json").is_file():
        return target
    target.mkdir(parents=True, exist_ok=True)
    base = _without_normalisation(params).to_dict()
    jobs = [(str(path), base) for path in paths]
    present = np.zeros((len(paths), len(STANDARD_LEADS)), dtype=bool)
    temporary = target / "signals.npy.partial"
    with open(temporary, "wb") as handle:
        results: Iterable[tuple[np.ndarray, np.ndarray]]
        if workers > 1:
            from concurrent.futures import ProcessPoolExecutor

            pool = ProcessPoolExecutor(max_workers=workers)
            results = pool.map(_read_job, jobs, chunksize=64)
        else:
            pool = None
            results = map(_read_job, jobs)
        try:
            length = None
            for row, (values, mask) in enumerate(results):
                if length is None:
                    length = values.shape[-1]
                    shape = (len(paths), len(STANDARD_LEADS), length)
                    header = {"descr": "<f4", "fortran_order": False, "shape": shape}
                    np.lib.format.write_array_header_1_0(handle, header)
                elif values.shape[-1] != length:
                    raise InputError(
                        f"record {Path(jobs[row][0]).name} has {values.shape[-1]} samples, the first had {length}: "
                        "set duration_s to crop or pad records to one length before caching"
                    )
                handle.write(np.ascontiguousarray(values, dtype="<f4").tobytes())
                present[row] = mask
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
    os.replace(temporary, target / "signals.npy")
    np.save(target / "present.npy", present)
    (target / "complete.json").write_text(json.dumps({"records": len(paths), "preprocessing": base}))
    return target


class SignalCache:
    """Read single records of a cache written by :func:`build_cache` (``os.pread``, fork-safe).

    Example:
        >>> cache = SignalCache(build_cache("/tmp/caches", paths, params))  # doctest: +SKIP
        >>> values, present = cache[0]  # doctest: +SKIP
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not (self.folder / "complete.json").is_file():
            raise InputError(f"{self.folder} is not a complete signal cache")
        self.present = np.load(self.folder / "present.npy")
        with open(self.folder / "signals.npy", "rb") as handle:
            version = np.lib.format.read_magic(handle)
            reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, _, dtype = reader(handle)
            self._offset = handle.tell()
        self.shape = tuple(int(value) for value in shape)
        self._dtype = np.dtype(dtype)
        self._record_bytes = int(np.prod(self.shape[1:])) * self._dtype.itemsize
        self._descriptor: int | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return self.shape[0]

    def _file(self) -> int:
        if self._descriptor is None or self._pid != os.getpid():
            self._descriptor = os.open(self.folder / "signals.npy", os.O_RDONLY)
            self._pid = os.getpid()
        return self._descriptor

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 <= index < self.shape[0]:
            raise IndexError(f"record {index} outside the cache of {self.shape[0]}")
        data = os.pread(self._file(), self._record_bytes, self._offset + index * self._record_bytes)
        values = np.frombuffer(data, dtype=self._dtype).reshape(self.shape[1:])
        return values, self.present[index]

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_descriptor"] = None
        return state

    def __del__(self) -> None:
        if getattr(self, "_descriptor", None) is not None and self._pid == os.getpid():
            try:
                os.close(self._descriptor)
            except OSError:
                pass
