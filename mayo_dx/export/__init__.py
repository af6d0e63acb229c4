"""Export trained networks to self-describing, verified ONNX artifacts (training layer).

:func:`export_model` writes one ``.onnx`` file with the model card inside; :func:`export_stages`
writes a folder artifact for multi-stage models (e.g. a CT localiser and analyser). Both run
``onnx.checker`` and torch-vs-onnxruntime parity on every export. The artifact format is
described in :mod:`mayo_dx.artifact`; the torch-free runtime reads it with
:func:`mayo_dx.runtime.load`. Single-file 1-D graphs are exported with their convolutions lifted
to ``1 x k`` 2-D ones (:mod:`mayo_dx.export.planar`: onnxruntime's faster kernels). INT8 copies
with measured metric changes: :func:`mayo_dx.export.quantize.quantize_artifact` (ECG) and
:func:`mayo_dx.export.quantize_ct.quantize_ct_artifact` (CT), one recipe in
:mod:`mayo_dx.export.int8`.

Example:
    >>> from mayo_dx.export import export_model  # doctest: +SKIP
"""

from mayo_dx.export.onnx import ExportStage, export_model, export_stages
from mayo_dx.export.parity import default_ecg_records, ecg_parity_inputs

__all__ = ["ExportStage", "default_ecg_records", "ecg_parity_inputs", "export_model", "export_stages"]
