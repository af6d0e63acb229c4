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
from mayo_dx.ecg.record import STANDARD_LEADS, EcgRecord, standard_lead_name
from mayo_dx.ecg.signal import EcgPreprocessing, preprocess

__all__ = [
    "STANDARD_LEADS",
    "EcgPreprocessing",
    "EcgRecord",
    "preprocess",
    "read",
    "read_dicom_ecg",
    "read_wfdb",
    "standard_lead_name",
]
