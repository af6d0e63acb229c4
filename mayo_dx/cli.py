"""The ``mayo-dx`` command line.

Subcommands: ``demo`` (the main job on bundled and generated data), ``inspect`` (read an ECG
file and report its PHI-free summary and quality as JSON), ``models`` (the artifacts in the
models folder; ``--networks`` for the registered architectures), ``fit``/``validate``/``test``
(LightningCLI, ECG or CT config), ``evaluate``, ``export``, ``predict``, ``quantize``,
``serve`` (MCP) and ``tools`` (tool definitions per vendor).

Example:
    >>> main(["models", "--networks", "--json"])  # doctest: +ELLIPSIS
    [...]
    0
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Sequence

from mayo_dx import __version__

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``mayo-dx`` command.

    Example:
        >>> build_parser().parse_args(["inspect", "record.hea"]).command
        'inspect'
    """
    parser = argparse.ArgumentParser(prog="mayo-dx", description="Small, validated diagnostic models.")
    parser.add_argument("--version", action="version", version=f"mayo-dx {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages to stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    demo = commands.add_parser("demo", help="run the end-to-end demo on bundled and generated data")
    demo.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (re-runnable)")
    demo.add_argument("--records", type=int, default=1000, help="synthetic PTB-XL-shaped records to generate")
    demo.add_argument("--seed", type=int, default=0, help="seed for generated data and training")
    demo.add_argument("--models", type=Path, default=None,
                      help="where the demo's artifacts go (default: $MAYO_DX_MODELS or ~/.local/share/mayo-dx/models)")
    demo.add_argument("--quick", action="store_true", help="fewer epochs and phantoms (a smoke run)")
    demo.add_argument("--data-only", action="store_true", help="only the data-path steps (no training)")

    inspect = commands.add_parser("inspect", help="read ECG files; print summary and quality as JSON lines")
    inspect.add_argument("paths", nargs="+", type=Path, help="WFDB records (.hea) or DICOM ECG files")

    models = commands.add_parser("models", help="list the trained artifacts in the models folder")
    models.add_argument("--json", action="store_true", help="print JSON instead of text")
    models.add_argument("--models", type=Path, default=None,
                        help="models folder (default: $MAYO_DX_MODELS or ~/.local/share/mayo-dx/models)")
    models.add_argument("--networks", action="store_true", help="list the registered network architectures instead")

    from mayo_dx.cli_artifacts import add_artifact_commands

    add_artifact_commands(commands)  # export, predict, quantize
    from mayo_dx.llm.cli import add_llm_commands

    add_llm_commands(commands)  # serve, tools
    from mayo_dx.cli_training import add_training_commands

    add_training_commands(commands)  # fit, validate, test (LightningCLI), evaluate
    return parser


def _inspect(paths: Sequence[Path]) -> int:
    from mayo_dx.ecg import read
    from mayo_dx.ecg.quality import check_quality, is_acceptable
    from mayo_dx.errors import InputError

    failures = 0
    for path in paths:
        try:
            record = read(path)
        except InputError as error:
            failures += 1
            print(json.dumps({"input": path.name, "error": type(error).__name__, "reason": str(error)}))
            continue
        issues = check_quality(record)
        print(
            json.dumps(
                {
                    "input": path.name,
                    "record": record.summary(),
                    "acceptable": is_acceptable(issues),
                    "quality": [issue.to_dict() for issue in issues],
                }
            )
        )
    return 1 if failures else 0


def _models(as_json: bool, folder: Path | None, networks: bool) -> int:
    if networks:
        return _networks(as_json)
    from mayo_dx.models_folder import list_artifacts
    from mayo_dx.paths import default_models_dir

    folder = folder if folder is not None else default_models_dir()
    entries = list_artifacts(folder)
    if as_json:
        print(json.dumps(entries))
    elif not entries:
        print(f"no model artifacts in {folder} (make demo trains and exports two; see README)")
    else:
        for entry in entries:
            if "error" in entry:
                print(f"{entry['name']:36s} REFUSED  {entry['error']}")
                continue
            note = "synthetic training data" if entry["synthetic_training_data"] else ""
            print(f"{entry['name']:36s} {entry['task']:4s} {entry['version']:8s} {','.join(entry['labels'])[:40]:40s} "
                  f"{note}  {entry['path']}")
    return 0


def _networks(as_json: bool) -> int:
    import importlib.util

    from mayo_dx.registry import get_model, list_models

    if importlib.util.find_spec("torch") is not None:  # the networks register on import (training layer)
        import mayo_dx.ecg.nets  # noqa: F401
        import mayo_dx.imaging.nets  # noqa: F401
    entries = [get_model(name) for name in list_models()]
    if as_json:
        print(json.dumps([{"name": e.name, "task": e.task, "description": e.description} for e in entries]))
    elif not entries:
        print("no networks registered (install the [train] extra)")
    else:
        for entry in entries:
            print(f"{entry.name:24s} {entry.task:6s} {entry.description}")
    return 0


def _ours_or_warnings(record: logging.LogRecord) -> bool:
    """Root-handler filter: mayo-dx messages, and warnings or worse from anyone else."""
    return record.name.startswith("mayo_dx") or record.levelno >= logging.WARNING


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``mayo-dx`` command; return the process exit status.

    Example:
        >>> main(["--version"])
        Traceback (most recent call last):
        ...
        SystemExit: 0
    """
    # Our messages at INFO (DEBUG with -v); other libraries' at WARNING, so that libraries with
    # their own handlers (Lightning) do not print each message twice.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for handler in logging.getLogger().handlers:
        handler.addFilter(_ours_or_warnings)
    logging.getLogger("mayo_dx").setLevel(logging.INFO)
    from mayo_dx.cli_training import lightning_subcommand

    status = lightning_subcommand(argv)  # LightningCLI parses its own arguments
    if status is not None:
        return status
    arguments = build_parser().parse_args(argv)
    if arguments.verbose:
        logging.getLogger("mayo_dx").setLevel(logging.DEBUG)
    if arguments.command == "inspect":
        return _inspect(arguments.paths)
    if arguments.command == "models":
        return _models(arguments.json, arguments.models, arguments.networks)
    if arguments.command == "demo":
        from mayo_dx.demo import run_demo

        return run_demo(arguments.out, records=arguments.records, seed=arguments.seed, models=arguments.models,
                        quick=arguments.quick, data_only=arguments.data_only)
    from mayo_dx.cli_artifacts import run_artifact_command

    status = run_artifact_command(arguments)
    if status is not None:
        return status
    from mayo_dx.llm.cli import run_llm_command

    status = run_llm_command(arguments)
    if status is not None:
        return status
    from mayo_dx.cli_training import run_training_command

    status = run_training_command(arguments)
    if status is not None:
        return status
    raise AssertionError(f"unhandled command {arguments.command}")  # argparse refuses unknown ones


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
