"""``mayo-dx export``, ``predict`` and ``quantize``: argument parsers and handlers.

Kept out of :mod:`mayo_dx.cli` so that module stays small; importing this module imports
nothing heavy (torch only inside ``export`` and ``quantize``, when they run).

Exit status of ``predict``: 0 when every input gave a diagnosis or an abstention, 1 when at
least one input failed (its error is in the JSON lines; the batch still ran to the end), 2
when the artifact itself cannot be loaded.

Example:
    >>> import argparse
    >>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
    >>> add_artifact_commands(commands)
    >>> sorted(commands.choices)
    ['export', 'predict', 'quantize']
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

__all__ = ["add_artifact_commands", "run_artifact_command"]

logger = logging.getLogger("mayo_dx.cli")


def add_artifact_commands(commands: Any) -> None:
    """Add the ``export``, ``predict`` and ``quantize`` subcommands to a subparsers object.

    Example:
        >>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
        >>> add_artifact_commands(commands)
    """
    export = commands.add_parser("export", help="export a trained checkpoint to a verified ONNX artifact")
    export.add_argument("checkpoint", type=Path, help="Lightning .ckpt from mayo-dx training (CT: the analyser)")
    export.add_argument("-o", "--output", type=Path, required=True, help="artifact path (.onnx; a folder for CT)")
    export.add_argument("--localiser", type=Path, default=None,
                        help="CT only: the localiser .ckpt (the positional checkpoint is then the analyser)")
    export.add_argument("--parity-data", type=Path, default=None,
                        help="folder with the shared/data/ecg (or shared/data/ct) layout")
    export.add_argument("--generated", type=int, default=None,
                        help="generated parity records (ECG, default 8) or phantom studies (CT, default 2)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    export.add_argument("--atol", type=float, default=None,
                        help="parity absolute tolerance (default 1e-4)")

    predict = commands.add_parser("predict", help="run an artifact over files, folders and CSV manifests; JSON lines")
    predict.add_argument("artifact", type=Path,
                         help=".onnx artifact, artifact folder, or a model name in the default models folder")
    predict.add_argument("inputs", nargs="+", help="files, folders (searched for .hea/.dcm) or .csv manifests")
    predict.add_argument("--out", default="-", help="JSON-lines output file ('-' for stdout, the default)")
    predict.add_argument("--workers", type=int, default=2, help="reader threads (default 2)")
    predict.add_argument("--threads", type=int, default=None, help="onnxruntime intra-op threads")
    predict.add_argument("--no-progress", action="store_true", help="hide the progress bar on stderr")

    quantize = commands.add_parser("quantize", help="static INT8 (QDQ, per-channel) copy of an ECG or CT artifact")
    quantize.add_argument("artifact", type=Path, help="float32 .onnx artifact (ECG) or artifact folder (CT)")
    quantize.add_argument("-o", "--output", type=Path, default=None,
                          help="default: <name>.int8.onnx (ECG), <folder>.int8 (CT)")
    quantize.add_argument("--data", type=Path, default=None,
                          help="calibration data instead of the card's data source (ECG: record files, a folder or "
                               "a manifest; CT: a Decathlon-shaped folder or a CT manifest .csv)")
    quantize.add_argument("--records", type=int, default=200, help="ECG: records for calibration/evaluation")
    quantize.add_argument("--calibration-cases", type=int, default=4, help="CT: cases to calibrate on (default 4)")
    quantize.add_argument("--evaluation-cases", type=int, default=8,
                          help="CT: generated phantoms to compare on (default 8)")
    quantize.add_argument("--max-auroc-drop", type=float, default=None,
                          help="refuse above this AUROC drop (default 0.01 ECG, 0.05 CT)")
    quantize.add_argument("--max-dice-drop", type=float, default=0.02,
                          help="CT: refuse above this pancreas-Dice drop (default 0.02)")
    quantize.add_argument("--seed", type=int, default=0, help="seed of case sampling and generated data")
    quantize.add_argument("--threads", type=int, default=None, help="CT: onnxruntime intra-op threads")


def _predict(arguments: argparse.Namespace) -> int:
    from mayo_dx.errors import ArtifactError, ModelNotFound
    from mayo_dx.models_folder import resolve_artifact
    from mayo_dx.runtime import load
    from mayo_dx.runtime_batch import discover_inputs, predict_to_jsonl

    try:
        predictor = load(resolve_artifact(arguments.artifact), threads=arguments.threads)
    except (ArtifactError, ModelNotFound) as error:
        print(f"mayo-dx predict: {error}", file=sys.stderr)
        return 2
    out = sys.stdout if arguments.out == "-" else open(arguments.out, "w", encoding="utf-8")
    try:
        items = discover_inputs(arguments.inputs, task=predictor.card.task)
        counts = predict_to_jsonl(predictor, items, out, workers=arguments.workers,
                                  progress=not arguments.no_progress)
    finally:
        if out is not sys.stdout:
            out.close()
    logger.info("predict: %s", json.dumps(counts))
    return 1 if counts["error"] else 0


def _export(arguments: argparse.Namespace) -> int:
    from mayo_dx.export.checkpoint import export_checkpoint

    path = export_checkpoint(arguments.checkpoint, arguments.output, parity_data=arguments.parity_data,
                             generated=arguments.generated, opset=arguments.opset, atol=arguments.atol,
                             localiser=getattr(arguments, "localiser", None))
    print(json.dumps({"artifact": str(path)}))
    return 0


def _quantize(arguments: argparse.Namespace) -> int:
    from mayo_dx.errors import MayoDxError

    try:
        if Path(arguments.artifact).is_dir():  # a folder artifact: the two-stage CT model
            from mayo_dx.export.quantize_ct import quantize_ct_artifact

            report = quantize_ct_artifact(
                arguments.artifact, arguments.output, data=arguments.data,
                calibration_cases=arguments.calibration_cases, evaluation_cases=arguments.evaluation_cases,
                max_dice_drop=arguments.max_dice_drop,
                max_auroc_drop=0.05 if arguments.max_auroc_drop is None else arguments.max_auroc_drop,
                seed=arguments.seed, threads=arguments.threads)
        else:
            from mayo_dx.export.quantize import quantize_artifact

            extra = {"data": [arguments.data]} if arguments.data is not None else {}
            report = quantize_artifact(
                arguments.artifact, arguments.output, records=arguments.records,
                max_auroc_drop=0.01 if arguments.max_auroc_drop is None else arguments.max_auroc_drop,
                seed=arguments.seed, **extra)
    except MayoDxError as error:  # a refusal or a bad artifact: one line with the reason, no traceback
        print(f"mayo-dx quantize: {error}", file=sys.stderr)
        return 2
    print(json.dumps(report))
    return 0


def run_artifact_command(arguments: argparse.Namespace) -> int | None:
    """Run ``export``/``predict``/``quantize`` if that is the command; else return ``None``.

    Example:
        >>> run_artifact_command(argparse.Namespace(command="models")) is None
        True
    """
    handlers = {"export": _export, "predict": _predict, "quantize": _quantize}
    handler = handlers.get(arguments.command)
    return None if handler is None else handler(arguments)
