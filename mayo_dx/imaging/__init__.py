"""Abdominal CT: readers (DICOM series, NIfTI), shared preprocessing, phantoms, measurements.

This package is runtime layer (numpy/scipy/pydicom/nibabel/highdicom); the training-layer
modules (``nets``, ``data``) import torch and are never imported from here.

Example:
    >>> from mayo_dx.imaging import CtVolume
    >>> CtVolume.__name__
    'CtVolume'
"""

from mayo_dx.imaging.dicom import discover_series
from mayo_dx.imaging.measure import LesionMeasurement, PancreasMeasurement, measure_labels
from mayo_dx.imaging.msd import MsdCase, MsdDataset, read_msd_dataset
from mayo_dx.imaging.nifti import read_nifti, read_nifti_labels, write_nifti
from mayo_dx.imaging.phantom import LesionSpec, Phantom, generate_phantom
from mayo_dx.imaging.phantom_io import write_msd_pancreas, write_phantom_dicom
from mayo_dx.imaging.read import read_series
from mayo_dx.imaging.resample import CtPreprocessing, preprocess_ct, preprocess_labels, restore_labels
from mayo_dx.imaging.seg_out import write_dicom_seg, write_nifti_labels
from mayo_dx.imaging.volume import AcquisitionInfo, CtVolume, Grid

__all__ = [
    "AcquisitionInfo",
    "CtPreprocessing",
    "CtVolume",
    "Grid",
    "LesionMeasurement",
    "LesionSpec",
    "MsdCase",
    "MsdDataset",
    "PancreasMeasurement",
    "Phantom",
    "discover_series",
    "generate_phantom",
    "measure_labels",
    "preprocess_ct",
    "preprocess_labels",
    "read_msd_dataset",
    "read_nifti",
    "read_nifti_labels",
    "read_series",
    "restore_labels",
    "write_dicom_seg",
    "write_msd_pancreas",
    "write_nifti",
    "write_nifti_labels",
    "write_phantom_dicom",
]
