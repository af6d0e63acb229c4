"""Defence in depth against PHI in tool output: identifiers from the input, and common patterns.

The primary guarantee is upstream: readers never put patient names, IDs, dates or free text
into the values they return, and tool results are built only from numbers, the model card and
fixed sentences. This module is the second line. :func:`collect_identifiers` reads the
identifying header fields of the input itself (DICOM person names, IDs, dates, institution,
free-text comments; WFDB header comments), and :class:`PhiScrubber` replaces any of those
strings, and anything shaped like a person name (``Family^Given``), a date, a phone number, an
e-mail address, a US social security number or a long run of digits (a record number), with
``[redacted]`` in every string of a result. Numbers are never altered; strings listed as
``keep`` (the model card's label codes, for example SNOMED CT codes) are never redacted.

Example:
    >>> scrubber = PhiScrubber(["Planted^Patient", "MRN-0042"])
    >>> scrubber.scrub({"reason": "MRN-0042 of Planted^Patient born 1945-07-04", "p": 0.5})
    {'reason': '[redacted] of [redacted] born [redacted]', 'p': 0.5}
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterable

from mayo_dx.imaging.dicom_headers import looks_like_dicom

__all__ = ["PhiScrubber", "REDACTED", "collect_identifiers"]

REDACTED = "[redacted]"

_PATTERNS: tuple[re.Pattern[str], ...] = (
    re.compile(r"[A-Za-z0-9'\-]*\^[A-Za-z0-9'\-^]*"),  # DICOM person name Family^Given^Middle
    re.compile(r"\b(?:18|19|20)\d{2}[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])\b"),  # 1945-07-04
    re.compile(r"\b(?:0?[1-9]|[12]\d|3[01])[-/.](?:0?[1-9]|1[0-2])[-/.](?:18|19|20)\d{2}\b"),  # 04/07/1945
    re.compile(r"\b\d{6,}\b"),  # DICOM dates (19450704), record numbers
    re.compile(r"\b\d{3}-\d{2}-\d{4}\b"),  # US SSN
    re.compile(r"\+\d{1,3}(?:[\s.\-]\d{2,4}){2,4}\b"),  # +1-555-0100
    re.compile(r"\(?\b\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{4}\b"),  # (555) 123-4567
    re.compile(r"\b[\w.+\-]+@[\w\-]+\.[\w.\-]+\b"),  # e-mail
)

#: DICOM value representations whose every value is treated as identifying (names, dates).
_IDENTIFYING_VRS = {"PN", "DA", "DT"}
#: DICOM keywords (PS3.15 basic profile, the common ones) whose text identifies a patient or site.
_IDENTIFYING_KEYWORDS = {
    "PatientID", "OtherPatientIDs", "IssuerOfPatientID", "PatientAddress", "PatientTelephoneNumbers",
    "MedicalRecordLocator", "MilitaryRank", "BranchOfService", "EthnicGroup", "Occupation",
    "PatientReligiousPreference", "AdditionalPatientHistory", "PatientComments", "CountryOfResidence",
    "RegionOfResidence", "ResponsibleOrganization", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "StationName", "DeviceSerialNumber", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "AccessionNumber", "StudyID", "ImageComments", "CurrentPatientLocation",
    "PatientInstitutionResidence", "AdmissionID", "ServiceEpisodeID", "RequestAttributesSequence",
    "RequestedProcedureID", "ScheduledProcedureStepID", "PerformedProcedureStepID", "FillerOrderNumberImagingServiceRequest",
    "PlacerOrderNumberImagingServiceRequest", "StudyComments", "InterpretationText", "TextValue", "ContentCreatorName",
    "DetectorID", "AcquisitionComments", "VisitComments",
}  # fmt: skip
_MIN_IDENTIFIER_CHARACTERS = 4


def _person_name_parts(text: str) -> list[str]:
    return [part for part in re.split(r"[\^=\s,]+", text) if len(part) >= _MIN_IDENTIFIER_CHARACTERS]


def _dicom_identifiers(path: Path, found: set[str]) -> None:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, AttributeError, KeyError):
        return

    def visit(data: Any) -> None:
        for element in data:
            if element.VR == "SQ":
                for item in element.value or []:
                    visit(item)
                continue
            if element.VR not in _IDENTIFYING_VRS and element.keyword not in _IDENTIFYING_KEYWORDS:
                continue
            values = element.value if isinstance(element.value, (list, tuple)) else [element.value]
            for value in values:
                text = str(value or "").strip()
                if len(text) >= _MIN_IDENTIFIER_CHARACTERS:
                    found.add(text)
                if element.VR == "PN":
                    found.update(_person_name_parts(text))

    try:
        visit(dataset)
    except (ValueError, TypeError, KeyError, AttributeError):  # a malformed element: keep what was found
        return


def _wfdb_identifiers(header: Path, found: set[str]) -> None:
    try:
        text = header.read_text(encoding="latin-1")
    except OSError:
        return
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped.startswith("#"):
            continue
        comment = stripped.lstrip("#").strip()
        if len(comment) >= _MIN_IDENTIFIER_CHARACTERS:
            found.add(comment)
        value = comment.split(":", 1)[-1].strip()
        if len(value) >= _MIN_IDENTIFIER_CHARACTERS:
            found.add(value)


def collect_identifiers(paths: Iterable[Path], *, max_files: int = 4) -> set[str]:
    """Identifying strings found in the headers of the input files (for :class:`PhiScrubber`).

    DICOM: every person name (whole, and each part of four characters or more) and date, and
    the text of the identifying elements of the PS3.15 basic profile (IDs, accession number,
    institution, station, comments...), in sequences too. Descriptions (series, study, protocol)
    are left out: a description such as "PANCREAS" would strike that word from every summary,
    and a patient name inside one is caught through the person-name elements. WFDB (``.hea``): every comment line, whole and after its
    ``key:``. At most ``max_files`` files are read (a series shares its patient module).

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> header = Path(tempfile.mkdtemp()) / "r.hea"
        >>> _ = header.write_text("r 1 500 10\\n# Patient: Planted Person\\n")
        >>> sorted(collect_identifiers([header]))
        ['Patient: Planted Person', 'Planted Person']
    """
    found: set[str] = set()
    for count, path in enumerate(paths):
        if count >= max_files:
            break
        path = Path(path)
        if path.suffix.lower() == ".hea":
            _wfdb_identifiers(path, found)
        elif path.is_file() and looks_like_dicom(path):
            _dicom_identifiers(path, found)
    return found


class PhiScrubber:
    """Replace identifiers and PHI-shaped text in every string of a result.

    Args:
        identifiers: Exact strings to remove (case-insensitive), e.g. from
            :func:`collect_identifiers`. Strings shorter than four characters are ignored.
        keep: Strings never redacted, whole or as a pattern match (label codes, model names).
        patterns: Also redact common PHI shapes (person names with ``^``, dates, long digit
            runs, phone numbers, e-mail addresses, SSNs).

    Example:
        >>> PhiScrubber(keep=["426783006"]).scrub_text("SNOMED CT 426783006, ID 12345678")
        'SNOMED CT 426783006, ID [redacted]'
    """

    def __init__(self, identifiers: Iterable[str] = (), *, keep: Iterable[str] = (), patterns: bool = True) -> None:
        self.keep = {item for item in keep if item}
        keep_lower = {item.lower() for item in self.keep}
        exact = sorted(
            {item for item in identifiers if len(item) >= _MIN_IDENTIFIER_CHARACTERS and item.lower() not in keep_lower},
            key=len,
            reverse=True,
        )
        self._exact = re.compile("|".join(re.escape(item) for item in exact), re.IGNORECASE) if exact else None
        self._patterns = _PATTERNS if patterns else ()

    def _replace(self, match: re.Match[str]) -> str:
        text = match.group(0)
        return text if text in self.keep or not text.strip("^ ") else REDACTED

    def scrub_text(self, text: str) -> str:
        """Return ``text`` with identifiers and PHI-shaped substrings replaced.

        Example:
            >>> PhiScrubber().scrub_text("call +1-555-0100 or mail a@b.org")
            'call [redacted] or mail [redacted]'
        """
        if self._exact is not None:
            text = self._exact.sub(REDACTED, text)
        for pattern in self._patterns:
            text = pattern.sub(self._replace, text)
        return text

    def scrub(self, value: Any) -> Any:
        """Scrub every string (dict keys included) in a JSON-like value; numbers pass unchanged.

        Example:
            >>> PhiScrubber().scrub(["born 19450704", 19450704])
            ['born [redacted]', 19450704]
        """
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, dict):
            return {self.scrub_text(key) if isinstance(key, str) else key: self.scrub(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.scrub(item) for item in value]
        return value
