"""Abdominal CT: readers (DICOM series, NIfTI), shared preprocessing, phantoms, measurements.

This package is runtime layer (numpy/scipy/pydicom/nibabel/highdicom); the training-layer
modules (``nets``, ``data``) import torch and are never imported from here.

Example:
    >>> from mayo_dx.imaging import CtVolume
    >>> CtVolume.__name__
    'CtVolume'
"""

from mayo_dx.imaging.volume import AcquisitionInfo, CtVolume

__all__ = ["AcquisitionInfo", "CtVolume"]
