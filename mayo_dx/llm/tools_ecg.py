"""ECG tool handlers: ``analyze_ecg`` and ``render_ecg``.

Both resolve the path through the guard, check every file the reader will open (the WFDB
header and each signal file it names, or the DICOM file), read the record once, and hand the
typed :class:`~mayo_dx.ecg.record.EcgRecord` to the predictor or the plot. Results are built
from the :class:`~mayo_dx.results.Diagnosis` / :class:`~mayo_dx.results.Abstention`, the card
and fixed sentences only.

Example:
    >>> wfdb_files(Path("rec.hea"), "rec 12 500 5000\\nrec.dat 16 1000 16 0 0 0 0 I\\n")
    [PosixPath('rec.dat')]
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mayo_dx.ecg.io import read
from mayo_dx.ecg.record import EcgRecord
from mayo_dx.errors import InputError
from mayo_dx.llm.context import CallFacts, ToolContext, ToolOutput
from mayo_dx.llm.report import (
    CLINICIAN_NOTE,
    finding_dict,
    findings_sentence,
    provenance,
    quality_dict,
    uncertainty_sentence,
)
from mayo_dx.results import Abstention

__all__ = ["analyze_ecg", "png_size", "read_guarded_ecg", "render_ecg", "wfdb_files"]

_SIGNAL_SUFFIXES = (".dat", ".mat")


def wfdb_files(header: Path, text: str) -> list[Path]:
    """The signal files a single-segment WFDB header names (beside the header).

    Example:
        >>> wfdb_files(Path("a/r.hea"), "r 2 360 10\\n# c\\nr.dat 212 200 11 1024 995 -22131 0 MLII\\nr.dat 212 200 11 1024 1011 20052 0 V5\\n")
        [PosixPath('a/r.dat')]
    """
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not lines:
        return []
    record = lines[0].split()
    try:
        count = int(record[1]) if len(record) > 1 else 0
    except ValueError:
        return []
    names = [line.split()[0] for line in lines[1 : 1 + count] if line.split()]
    return [header.parent / name for name in dict.fromkeys(names) if name != "~"]


def _header_of(path: Path) -> Path:
    if path.suffix.lower() == ".hea":
        return path
    if path.suffix.lower() in _SIGNAL_SUFFIXES:
        return path.with_suffix(".hea")
    return Path(f"{path}.hea")


def read_guarded_ecg(context: ToolContext, given: Any, facts: CallFacts) -> EcgRecord:
    """Resolve, check and read an ECG path argument.

    Raises:
        PathNotAllowed: The path, or a file the header names, is refused by the guard.
        LimitExceeded: A file exceeds the size limit.
        InputError: A folder, or a file that is not a readable ECG.
    """
    guard = context.guard
    path = guard.resolve(given)
    facts.input_path = path
    if path.is_dir():
        raise InputError("the path is a folder; give one ECG file (a WFDB .hea record or a DICOM ECG)")
    header = _header_of(path)
    files: list[Path] = []
    if path.is_file():
        files.append(guard.check_file(path))
    if header != path and header.exists():
        files.append(guard.check_file(header))
    if header.is_file():
        try:
            text = header.read_text(encoding="latin-1")[:65536]
        except OSError as error:
            raise InputError(f"the WFDB header cannot be read ({type(error).__name__})") from error
        files.extend(guard.check_files(wfdb_files(header, text)))
    facts.input_files = [path] + ([header] if header != path and header.is_file() else [])
    facts.file_names.update(file.name for file in [path, header, *files])
    return read(path)


def _measurements(record: EcgRecord, values: dict[str, float]) -> dict[str, Any]:
    rate = values.get("heart_rate_bpm")
    return {
        "heart_rate_bpm": None if rate is None or not np.isfinite(rate) else round(float(rate), 1),
        "duration_s": round(record.duration_s, 3),
        "sampling_rate_hz": record.fs,
        "missing_leads": list(record.missing_leads),
    }


def analyze_ecg(context: ToolContext, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
    """Run an ECG model on one record and describe the result for an agent.

    Example:
        >>> analyze_ecg(context, {"path": "ptbxl/00001_lr.hea"}, CallFacts())  # doctest: +SKIP
    """
    context.guard.resolve(arguments.get("path"))  # refuse a bad path before anything else
    entry = context.catalog.choose(arguments.get("model"), "ecg")
    facts.model, facts.model_sha256 = entry.card.name, entry.sha256
    record = read_guarded_ecg(context, arguments.get("path"), facts)
    predictor = context.catalog.predictor(entry.card.name)
    result = predictor.predict(record)
    card = entry.card
    source = provenance(card, getattr(result, "artifact_sha256", None) or entry.sha256)
    basics = f"Model {card.name} {card.version} was run on a {record.duration_s:.1f} s 12-lead ECG sampled at {record.fs:g} Hz."
    if isinstance(result, Abstention):
        facts.decision = "abstained"
        reason = "; ".join(issue.message for issue in result.reasons)
        summary = (f"{basics} It cannot assess this recording because the signal fails the quality checks the model "
                   f"needs: {reason} No probability is given. A repeat or cleaner recording may be assessable. {CLINICIAN_NOTE}")
        return ToolOutput({"status": "abstained", "reason": f"cannot assess: {reason}", "quality": quality_dict(result.reasons),
                           "measurements": _measurements(record, {}), "model": source, "summary": summary})
    findings = [finding_dict(finding, card) for finding in result.findings]
    facts.decision = [item["label"] for item in findings if item["positive"]]
    measurements = _measurements(record, dict(result.measurements))
    quality = quality_dict(result.quality)
    parts = [basics, findings_sentence(findings)]
    if measurements["heart_rate_bpm"] is not None:
        parts.append(f"Heart rate about {measurements['heart_rate_bpm']:.0f} beats per minute (from the median RR interval).")
    if quality["issues"]:
        parts.append("Quality warnings: " + " ".join(issue["message"] for issue in quality["issues"]))
    parts += [uncertainty_sentence(findings, card.synthetic_training_data), CLINICIAN_NOTE]
    return ToolOutput({"status": "assessed", "findings": findings, "positive_labels": facts.decision, "quality": quality,
                       "measurements": measurements, "model": source, "summary": " ".join(parts)})


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its IHDR chunk.

    Example:
        >>> png_size(b"\\x89PNG\\r\\n\\x1a\\n" + b"\\x00\\x00\\x00\\rIHDR" + (640).to_bytes(4, "big") + (480).to_bytes(4, "big"))
        (640, 480)
    """
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise ValueError("not a PNG image")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _to_record_length(saliency: np.ndarray, record: EcgRecord) -> np.ndarray:
    """Saliency at the network's rate, stretched over the record's samples (linear interpolation)."""
    weights = np.nan_to_num(np.abs(np.asarray(saliency, dtype=np.float64)))
    source = np.linspace(0.0, 1.0, weights.shape[-1])
    target = np.linspace(0.0, 1.0, record.n_samples)
    stretched = np.stack([np.interp(target, source, row) for row in weights])
    stretched[[index for index, lead in enumerate(record.leads) if lead in record.missing_leads]] = 0.0
    return stretched


def render_ecg(context: ToolContext, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
    """Draw the 12-lead sheet (25 mm/s, 10 mm/mV), shaded by the model's saliency when available.

    Example:
        >>> render_ecg(context, {"path": "ptbxl/00001_lr.hea"}, CallFacts())  # doctest: +SKIP
    """
    from mayo_dx.plots import figure_to_png_bytes, plot_ecg_12lead

    want_saliency = bool(arguments.get("saliency", True))
    context.guard.resolve(arguments.get("path"))  # refuse a bad path before anything else
    entry = None
    if arguments.get("model") is not None or (want_saliency and context.catalog.names("ecg")):
        entry = context.catalog.choose(arguments.get("model"), "ecg")
        facts.model, facts.model_sha256 = entry.card.name, entry.sha256
    record = read_guarded_ecg(context, arguments.get("path"), facts)
    saliency = None
    note = ""
    if entry is not None and want_saliency:
        predictor = context.catalog.predictor(entry.card.name)
        if hasattr(predictor, "saliency"):
            try:
                saliency = _to_record_length(predictor.saliency(record), record)
            except InputError:
                note = " No saliency is shown: the model abstains on this recording (quality checks failed)."
        else:
            note = " No saliency is shown: this model provides none."
    figure = plot_ecg_12lead(record, saliency=saliency)
    try:
        data = figure_to_png_bytes(figure)
    finally:
        figure.clear()
    width, height = png_size(data)
    description = (f"Standard 12-lead ECG sheet (25 mm/s, 10 mm/mV, 1 mm and 5 mm grid): three rows of four 2.5 s "
                   f"columns (I, aVR, V1, V4 / II, aVL, V2, V5 / III, aVF, V3, V6) and a 10 s lead II rhythm strip; "
                   f"recording {record.duration_s:.1f} s at {record.fs:g} Hz.")
    if saliency is not None:
        description += (f" Shading shows where model {entry.card.name} looked: occlusion saliency for its most probable "
                        "label, relative to its maximum (it shows influence, not pathology).")
    facts.decision = "rendered"
    return ToolOutput({"status": "ok", "mime_type": "image/png", "width_px": width, "height_px": height,
                       "description": description + note, "overlay": "saliency" if saliency is not None else None,
                       "model": provenance(entry.card, entry.sha256) if entry is not None else None}, images=(data,))
