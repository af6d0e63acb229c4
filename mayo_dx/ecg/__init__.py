"""12-lead ECG: readers, signal processing, quality checks, synthetic data and PTB-XL.

This package is runtime layer (numpy/scipy/wfdb/pydicom). The training-layer modules
(``nets``, ``data``) import torch and are never imported from here.

Example:
    >>> from pydicom.data import get_testdata_file
    >>> from mayo_dx import ecg
    >>> ecg.read(get_testdata_file("waveform_ecg.dcm")).leads[:3]
    ('I', 'II', 'III')
"""

from mayo_dx.ecg.io import read, read_dicom_ecg, read_wfdb
from mayo_dx.ecg.ptbxl import PtbxlDataset, download_ptbxl, load_ptbxl
from mayo_dx.ecg.quality import QualityThresholds, check_quality, is_acceptable
from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord, standard_lead_name
from mayo_dx.ecg.signal import EcgPreprocessing, preprocess, sliding_windows
from mayo_dx.ecg.synthetic import SUPERCLASSES, generate_ecg, generate_labelled_ecg
from mayo_dx.ecg.synthetic_ptbxl import write_ptbxl_like

__all__ = [
    "STANDARD_LEADS",
    "SUPERCLASSES",
    "EcgPreprocessing",
    "EcgRecord",
    "PtbxlDataset",
    "QualityThresholds",
    "check_quality",
    "download_ptbxl",
    "generate_ecg",
    "generate_labelled_ecg",
    "is_acceptable",
    "load_ptbxl",
    "preprocess",
    "read",
    "read_dicom_ecg",
    "read_wfdb",
    "sliding_windows",
    "standard_lead_name",
    "write_ptbxl_like",
]
