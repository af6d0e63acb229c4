"""Training subcommands of ``mayo-dx``: ``fit``, ``validate``, ``test`` and ``evaluate``.

``fit``/``validate``/``test`` belong to LightningCLI, which parses its own arguments
(``-c configs/ecg/<name>.yaml``, ``--trainer.max_epochs 5``...): :func:`lightning_subcommand`
hands them over before argparse sees them. ``evaluate`` writes per-class AUROC (95 % CI),
F1, sensitivity, specificity and ECE of a checkpoint on one split as JSON.

This module is imported by the torch-free ``mayo_dx.cli``: torch and lightning are imported
only when a training subcommand runs, with a one-line hint when the ``[train]`` extra is absent.

Example:
    >>> lightning_subcommand(["models"]) is None
    True
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Sequence

from mayo_dx.errors import MayoDxError, MissingDependency

__all__ = ["LIGHTNING_SUBCOMMANDS", "add_training_commands", "lightning_subcommand", "run_training_command"]

#: Subcommands parsed by LightningCLI.
LIGHTNING_SUBCOMMANDS: tuple[str, ...] = ("fit", "validate", "test")

_HINT = 'training needs the [train] extra: pip install "mayo-dx[train]"'


def _training_module(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and error.name.split(".")[0] in ("torch", "lightning", "torchmetrics", "jsonargparse"):
            raise MissingDependency(_HINT) from error
        raise


def lightning_subcommand(argv: Sequence[str] | None) -> int | None:
    """Run ``fit``/``validate``/``test`` through LightningCLI; ``None`` for any other command.

    Example:
        >>> lightning_subcommand(["fit", "-c", "configs/ecg/synthetic.yaml"])  # doctest: +SKIP
        0
    """
    arguments = list(sys.argv[1:] if argv is None else argv)
    if not arguments or arguments[0] not in LIGHTNING_SUBCOMMANDS:
        return None
    # A CT stage config (model.class_path in mayo_dx.training.segmentation) goes to the CT CLI.
    module = "mayo_dx.training.ct_cli" if _is_ct_config(arguments) else "mayo_dx.training.cli"
    return int(_training_module(module).main(arguments))


def _is_ct_config(arguments: Sequence[str]) -> bool:
    """True when a ``-c``/``--config`` file names a CT task as ``model.class_path``."""
    for index, argument in enumerate(arguments[:-1]):
        if argument in ("-c", "--config") and Path(arguments[index + 1]).is_file():
            text = Path(arguments[index + 1]).read_text()
            if "mayo_dx.training.segmentation." in text:
                import yaml

                model = (yaml.safe_load(text) or {}).get("model")
                if isinstance(model, dict) and str(model.get("class_path", "")).startswith("mayo_dx.training.segmentation"):
                    return True
    return False


def add_training_commands(commands: Any) -> None:
    """Add ``fit``/``validate``/``test`` (listed for ``--help``) and ``evaluate`` to the subparsers.

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_training_commands(parser.add_subparsers(dest="command"))
        >>> parser.parse_args(["evaluate", "best.ckpt", "--fold", "validation"]).fold
        'validation'
    """
    for name in LIGHTNING_SUBCOMMANDS:
        usage = f"LightningCLI {name}: mayo-dx {name} -c configs/ecg/<name>.yaml (see --help)"
        commands.add_parser(name, help=usage, add_help=False)
    evaluate = commands.add_parser("evaluate", help="metrics of a trained checkpoint on one split, as JSON")
    evaluate.add_argument("checkpoint", type=Path, help="checkpoint written by mayo-dx fit (the best one has the card)")
    evaluate.add_argument("--fold", choices=("train", "validation", "test"), default="test", help="split to evaluate")
    evaluate.add_argument("--out", type=Path, default=None, help="also write the JSON to this file")
    evaluate.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples of the AUROC 95%% CI")
    evaluate.add_argument("--batch-size", type=int, default=32, help="records per batch")


def run_training_command(arguments: argparse.Namespace) -> int | None:
    """Run ``evaluate``; ``None`` when the command is not a training one.

    Example:
        >>> run_training_command(argparse.Namespace(command="models")) is None
        True
    """
    if arguments.command != "evaluate":
        return None
    evaluation = _training_module("mayo_dx.training.evaluation")
    try:
        result = evaluation.evaluate_checkpoint(
            arguments.checkpoint, arguments.fold, batch_size=arguments.batch_size,
            bootstrap_resamples=arguments.bootstrap, output=arguments.out,
        )
    except MayoDxError as error:
        print(f"mayo-dx evaluate: {error}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0
