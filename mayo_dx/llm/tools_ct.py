"""CT tool handlers: ``analyze_ct_pancreas`` and ``render_ct``.

The path is a folder holding one DICOM CT series, one DICOM file (Enhanced CT) or a NIfTI
file. Every file of a folder is checked by the guard (inside the roots once links are followed,
regular, within the size, count and total-size limits) and only those checked files are handed
to the reader. A folder with more than one usable axial CT series is refused: the agent must
point at one series, so the answer is never about a series nobody chose. Results are numbers,
card text and fixed sentences; series descriptions and other header text are never echoed.

Example:
    >>> lesion_sentence([])
    'No pancreatic lesion was segmented.'
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from mayo_dx.errors import InputError
from mayo_dx.imaging.dicom import read_dicom_series
from mayo_dx.imaging.dicom_discovery import discover_series
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.volume import CtVolume
from mayo_dx.llm.context import CallFacts, ToolContext, ToolOutput
from mayo_dx.llm.report import CLINICIAN_NOTE, finding_dict, provenance, quality_dict, uncertainty_sentence
from mayo_dx.llm.tools_ecg import png_size
from mayo_dx.results import Abstention, QualityIssue

__all__ = ["analyze_ct_pancreas", "lesion_sentence", "read_guarded_ct", "render_ct"]

_LOCATIONS = ("head", "body", "tail")


def read_guarded_ct(context: ToolContext, given: Any, facts: CallFacts) -> CtVolume:
    """Resolve, check and read a CT path argument (one series folder, DICOM file or NIfTI).

    Raises:
        PathNotAllowed: The path or a file in the folder is refused by the guard.
        LimitExceeded: Too many files, too large a file or series.
        InputError: Several series in the folder, or a reader error (typed subclasses).
    """
    guard = context.guard
    path = guard.resolve(given)
    facts.input_path = path
    if not path.is_dir():
        facts.input_files = [guard.check_file(path)]
        facts.file_names.add(path.name)
        return read_series(path)
    files = guard.series_files(path)
    facts.file_names.update(file.name for file in files)
    report = discover_series(files) if files else None
    if report is not None and len(report.candidates) > 1:
        numbers = ", ".join(str(item.series_number) if item.series_number is not None else "?" for item in report.candidates)
        raise InputError(f"the folder holds {len(report.candidates)} usable axial CT series (series numbers {numbers}); "
                         "give the folder of exactly one series")
    chosen = list(report.chosen.files) if report is not None and report.chosen is not None else files
    facts.input_files = chosen[:2]
    return read_dicom_series(chosen if chosen else path)


def _evidence(result: Any) -> dict[str, Any]:
    """Pancreas found / volume and lesions from what the CT predictor reports."""
    measurements: Mapping[str, Any] = dict(getattr(result, "measurements", {}) or {})
    volume = measurements.get("pancreas_volume_ml")
    found = measurements.get("pancreas_found")
    found = bool(found) if found is not None else (None if volume is None else float(volume) > 0)
    lesions_value = getattr(result, "lesions", None)
    lesions: list[dict[str, Any]] | None = None
    if lesions_value is not None:
        lesions = []
        for number, lesion in enumerate(lesions_value, start=1):
            data = lesion.to_dict() if hasattr(lesion, "to_dict") else dict(lesion)
            location = str(data.get("location", "unknown"))
            lesions.append({
                "number": int(data.get("number", number)),
                "volume_ml": round(float(data["volume_ml"]), 3),
                "longest_axial_diameter_mm": round(float(data["longest_axial_diameter_mm"]), 1),
                "location": location if location in _LOCATIONS else "unknown",
            })
    return {"found": found, "volume_ml": None if volume is None else round(float(volume), 2), "lesions": lesions}


def lesion_sentence(lesions: Sequence[Mapping[str, Any]] | None) -> str:
    """One sentence on the segmented lesions.

    Example:
        >>> lesion_sentence([{"number": 1, "volume_ml": 2.5, "longest_axial_diameter_mm": 21.0, "location": "head"}])
        'Segmented lesion: 21 mm (longest axial diameter), 2.5 ml, in the pancreatic head.'
    """
    if lesions is None:
        return "The model does not report lesion measurements."
    if not lesions:
        return "No pancreatic lesion was segmented."
    parts = []
    for lesion in lesions:
        place = f"in the pancreatic {lesion['location']}" if lesion["location"] in _LOCATIONS else "location unknown"
        parts.append(f"{lesion['longest_axial_diameter_mm']:.0f} mm (longest axial diameter), {lesion['volume_ml']:g} ml, {place}")
    noun = "lesion" if len(parts) == 1 else f"{len(parts)} lesions"
    return f"Segmented {noun}: " + "; ".join(parts) + "."


def _volume_facts(volume: CtVolume) -> dict[str, Any]:
    return {"shape_zyx": list(volume.shape), "spacing_zyx_mm": [round(value, 4) for value in volume.spacing],
            "source_format": volume.source_format, "warnings": list(volume.warnings)}


def _issues(volume: CtVolume, extra: Sequence[QualityIssue]) -> list[QualityIssue]:
    """The volume's geometry warnings and the result's issues, each once (the CT predictor
    already reports geometry warnings in a diagnosis's quality)."""
    geometry = [QualityIssue(code="geometry_warning", message=text, severity="warn") for text in volume.warnings]
    unique: dict[tuple[str, str], QualityIssue] = {}
    for issue in [*geometry, *extra]:
        unique.setdefault((issue.code, issue.message), issue)
    return list(unique.values())


def analyze_ct_pancreas(context: ToolContext, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
    """Run a pancreas CT model on one study and describe the result for an agent.

    Example:
        >>> analyze_ct_pancreas(context, {"path": "ct/case_001"}, CallFacts())  # doctest: +SKIP
    """
    context.guard.resolve(arguments.get("path"))  # refuse a bad path before anything else
    entry = context.catalog.choose(arguments.get("model"), "ct")
    facts.model, facts.model_sha256 = entry.card.name, entry.sha256
    volume = read_guarded_ct(context, arguments.get("path"), facts)
    result = context.catalog.predictor(entry.card.name).predict(volume)
    card = entry.card
    source = provenance(card, getattr(result, "artifact_sha256", None) or entry.sha256)
    basics = (f"Model {card.name} {card.version} was run on a CT volume of {volume.shape[0]} slices "
              f"({volume.spacing[0]:g} mm apart, {volume.spacing[2]:g} mm pixels).")
    if isinstance(result, Abstention):
        facts.decision = "abstained"
        reason = "; ".join(issue.message for issue in result.reasons)
        summary = (f"{basics} It cannot assess this study: {reason} No cancer probability is given. {CLINICIAN_NOTE}")
        return ToolOutput({"status": "abstained", "reason": f"cannot assess: {reason}",
                           "quality": quality_dict(_issues(volume, result.reasons)), "volume": _volume_facts(volume),
                           "model": source, "summary": summary})
    findings = [finding_dict(finding, card) for finding in result.findings]
    if not findings:
        raise InputError("the model returned no finding for this study")
    cancer = dict(findings[0])
    cancer.pop("description", None)
    facts.decision = "positive" if cancer["positive"] else "negative"
    pancreas = _evidence(result)
    decision = "at or above" if cancer["positive"] else "below"
    parts = [basics,
             f"Calibrated probability of pancreatic cancer: {cancer['probability']:.2f}, {decision} the model's operating "
             f"threshold of {cancer['threshold']:.2f}, so the study is called {facts.decision}."]
    if pancreas["found"] is not None:
        size = f" ({pancreas['volume_ml']:g} ml)" if pancreas["volume_ml"] is not None else ""
        parts.append(f"Pancreas found{size}." if pancreas["found"] else "The pancreas was not found.")
    parts.append(lesion_sentence(pancreas["lesions"]))
    issues = _issues(volume, result.quality)
    if issues:
        parts.append("Quality and geometry warnings: " + " ".join(issue.message for issue in issues))
    parts += [uncertainty_sentence(findings, card.synthetic_training_data), CLINICIAN_NOTE]
    return ToolOutput({"status": "assessed", "cancer": cancer, "findings": findings, "pancreas": pancreas,
                       "quality": quality_dict(issues), "volume": _volume_facts(volume), "model": source,
                       "summary": " ".join(parts)})


def _masks(predictor: Any, volume: CtVolume) -> dict[str, np.ndarray] | None:
    """Pancreas and lesion masks from a predictor that can segment (``segment(volume)``), else None."""
    segment = getattr(predictor, "segment", None)
    if segment is None:
        return None
    labels = segment(volume)
    labels = getattr(labels, "labels", labels)
    labels = np.asarray(labels)
    if labels.shape != volume.shape:
        return None
    return {"pancreas": labels >= 1, "lesion": labels == 2}


def render_ct(context: ToolContext, arguments: dict[str, Any], facts: CallFacts) -> ToolOutput:
    """Draw an axial montage (soft-tissue window) with the model's pancreas and lesion contours.

    Example:
        >>> render_ct(context, {"path": "ct/case_001"}, CallFacts())  # doctest: +SKIP
    """
    from mayo_dx.plots import figure_to_png_bytes, plot_ct_montage

    want_masks = bool(arguments.get("masks", True))
    context.guard.resolve(arguments.get("path"))  # refuse a bad path before anything else
    entry = None
    if arguments.get("model") is not None or (want_masks and context.catalog.names("ct")):
        entry = context.catalog.choose(arguments.get("model"), "ct")
        facts.model, facts.model_sha256 = entry.card.name, entry.sha256
    volume = read_guarded_ct(context, arguments.get("path"), facts)
    masks = _masks(context.catalog.predictor(entry.card.name), volume) if entry is not None and want_masks else None
    figure = plot_ct_montage(volume, masks=masks)
    try:
        data = figure_to_png_bytes(figure)
    finally:
        figure.clear()
    width, height = png_size(data)
    description = (f"Axial CT slices in a soft-tissue window, each labelled with its head-feet position in mm; "
                   f"volume of {volume.shape[0]} slices.")
    if masks is not None:
        description += f" Contours from model {entry.card.name}: pancreas in green, lesion in red."
    elif entry is not None and want_masks:
        description += " No masks are drawn: this model does not provide segmentations."
    facts.decision = "rendered"
    return ToolOutput({"status": "ok", "mime_type": "image/png", "width_px": width, "height_px": height,
                       "description": description, "overlay": "masks" if masks is not None else None,
                       "model": provenance(entry.card, entry.sha256) if entry is not None else None}, images=(data,))
