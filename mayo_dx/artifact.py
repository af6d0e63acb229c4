"""Model artifacts on disk: one ONNX file, or a folder of stage files, each verified on read.

Runtime layer: numpy-free, torch-free and ``onnx``-free. The ONNX protobuf is walked at the
wire level (top-level fields only), which is enough to read ``metadata_props``, compute the
graph hash and refuse a truncated file, without the ``onnx`` package.

Two layouts:

* **Single file** ``<name>.onnx``. ``metadata_props`` holds the model card as JSON
  (:data:`CARD_KEY`), the SHA-256 of that JSON text (:data:`CARD_SHA256_KEY`), the graph hash
  (:data:`GRAPH_SHA256_KEY`) and the format tag (:data:`FORMAT_KEY`).
* **Folder** ``<name>/`` for multi-stage models (e.g. CT localiser + analyser): ``card.json``,
  one ``<stage>.onnx`` per stage (each with its own graph hash and stage name in its metadata)
  and ``manifest.json`` listing the SHA-256 of every file's bytes and every stage's graph hash.

Hashes, defined precisely:

* **graph SHA-256**: SHA-256 of the ONNX file's bytes with every top-level ``metadata_props``
  record (field 14 of ``ModelProto``: tag, length and payload) removed, the other bytes kept
  in file order. That equals the SHA-256 of ``ModelProto.SerializeToString()`` with
  ``metadata_props`` cleared, so a change to any weight, node, opset or IR version changes it
  while the card can be attached afterwards.
* **artifact SHA-256** (``Diagnosis.artifact_sha256``): SHA-256 of the whole ``.onnx`` file
  (what ``sha256sum model.onnx`` prints); for a folder, SHA-256 of ``manifest.json``, which
  names the hash of every other file. Pin it with ``expected_sha256`` to trust an artifact
  from a registry.

The stored hashes detect corruption and edits made without re-running the export; they are
not a signature (someone rewriting the file can rewrite the hashes too). For authenticity,
pin the artifact SHA-256 obtained from a trusted source.

Example:
    >>> parse_fields(bytes([0x08, 0x07]))  # field 1 (ir_version), varint 7
    [(1, 0, 0, 2)]
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from mayo_dx.card import ModelCard
from mayo_dx.errors import ArtifactError

__all__ = [
    "ARTIFACT_FORMAT",
    "Artifact",
    "CARD_KEY",
    "CARD_SHA256_KEY",
    "FORMAT_KEY",
    "GRAPH_SHA256_KEY",
    "MANIFEST_FORMAT",
    "STAGE_KEY",
    "graph_sha256",
    "onnx_metadata",
    "parse_fields",
    "read_artifact",
    "sha256_hex",
]

#: Format tag written into every single-file artifact and stage file.
ARTIFACT_FORMAT = "mayo-dx-onnx/1"
#: Format tag of ``manifest.json`` in a folder artifact.
MANIFEST_FORMAT = "mayo-dx-artifact/1"
#: ``metadata_props`` keys.
CARD_KEY = "mayo_dx.card"
CARD_SHA256_KEY = "mayo_dx.card_sha256"
GRAPH_SHA256_KEY = "mayo_dx.graph_sha256"
FORMAT_KEY = "mayo_dx.format"
STAGE_KEY = "mayo_dx.stage"

_METADATA_FIELD = 14  # ModelProto.metadata_props
_GRAPH_FIELD = 7  # ModelProto.graph
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,120}$")


def sha256_hex(data: bytes) -> str:
    """Hex SHA-256 of ``data``.

    Example:
        >>> sha256_hex(b"")[:12]
        'e3b0c44298fc'
    """
    return hashlib.sha256(data).hexdigest()


def _varint(data: bytes | memoryview, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(data):
            raise ArtifactError("the ONNX file ends inside a field header (truncated)")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise ArtifactError("the ONNX file holds a malformed varint (corrupt)")


def parse_fields(data: bytes | memoryview) -> list[tuple[int, int, int, int]]:
    """Walk the top-level protobuf fields of ``data``.

    Returns:
        ``(field_number, wire_type, start, end)`` per record, where ``data[start:end]`` is the
        whole record (tag, length and payload).

    Raises:
        ArtifactError: The bytes are not a well-formed protobuf message (truncated or corrupt).

    Example:
        >>> parse_fields(bytes([0x12, 0x02, 0x68, 0x69]))  # field 2, the string "hi"
        [(2, 2, 0, 4)]
    """
    records: list[tuple[int, int, int, int]] = []
    position = 0
    size = len(data)
    while position < size:
        start = position
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 0x07
        if number == 0:
            raise ArtifactError("the ONNX file holds field number 0 (corrupt)")
        if wire_type == 0:
            _, position = _varint(data, position)
        elif wire_type == 1:
            position += 8
        elif wire_type == 2:
            length, position = _varint(data, position)
            position += length
        elif wire_type == 5:
            position += 4
        else:
            raise ArtifactError(f"the ONNX file holds an unsupported wire type {wire_type} (corrupt)")
        if position > size:
            raise ArtifactError("the ONNX file ends inside a field (truncated)")
        records.append((number, wire_type, start, position))
    return records


def _payload(data: bytes | memoryview, start: int) -> bytes:
    _, position = _varint(data, start)
    length, position = _varint(data, position)
    return bytes(data[position : position + length])


def graph_sha256(data: bytes) -> str:
    """SHA-256 of an ONNX file with its top-level ``metadata_props`` removed (see module doc).

    Raises:
        ArtifactError: The bytes are not a well-formed ONNX protobuf, or hold no graph.

    Example:
        >>> graph_sha256(bytes([0x3A, 0x00])) == sha256_hex(bytes([0x3A, 0x00]))  # graph only
        True
    """
    view = memoryview(data)
    digest = hashlib.sha256()
    has_graph = False
    for number, wire_type, start, end in parse_fields(view):
        has_graph |= number == _GRAPH_FIELD and wire_type == 2
        if not (number == _METADATA_FIELD and wire_type == 2):
            digest.update(view[start:end])
    if not has_graph:
        raise ArtifactError("the ONNX file holds no graph")
    return digest.hexdigest()


def onnx_metadata(data: bytes) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX file as a dict, read without the ``onnx`` package.

    Raises:
        ArtifactError: Malformed protobuf, or an entry that is not UTF-8 text.

    Example:
        >>> entry = bytes([0x0A, 0x01]) + b"k" + bytes([0x12, 0x01]) + b"v"
        >>> onnx_metadata(bytes([0x72, len(entry)]) + entry)
        {'k': 'v'}
    """
    view = memoryview(data)
    metadata: dict[str, str] = {}
    for number, wire_type, start, _ in parse_fields(view):
        if number != _METADATA_FIELD or wire_type != 2:
            continue
        entry = _payload(view, start)
        values = {1: "", 2: ""}
        for inner_number, inner_type, inner_start, _ in parse_fields(entry):
            if inner_number in values and inner_type == 2:
                try:
                    values[inner_number] = _payload(entry, inner_start).decode("utf-8")
                except UnicodeDecodeError as error:
                    raise ArtifactError("an ONNX metadata entry is not UTF-8 text (corrupt)") from error
        metadata[values[1]] = values[2]
    return metadata


@dataclass(frozen=True, eq=False)
class Artifact:
    """A verified artifact: card, stage graphs and hashes.

    Attributes:
        path: The ``.onnx`` file or the artifact folder.
        card: The model card.
        sha256: Artifact SHA-256 (file bytes, or ``manifest.json`` bytes for a folder).
        stages: Stage name -> ONNX bytes; a single-file artifact has one stage, ``"model"``.
        graph_sha256: Stage name -> graph SHA-256.
    """

    path: Path
    card: ModelCard
    sha256: str
    stages: Mapping[str, bytes] = field(repr=False)
    graph_sha256: Mapping[str, str] = field(default_factory=dict)


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ArtifactError(f"{path.name}: cannot read the artifact ({type(error).__name__})") from error
    if not data:
        raise ArtifactError(f"{path.name}: the artifact file is empty")
    return data


def _card_from_text(text: str, where: str) -> ModelCard:
    try:
        return ModelCard.from_json(text)
    except (ValueError, KeyError, TypeError) as error:
        raise ArtifactError(f"{where}: the model card is not valid ({error})") from error


def _verify_onnx(data: bytes, where: str) -> tuple[dict[str, str], str]:
    """Check format tag and graph hash of one ONNX file; return its metadata and graph hash."""
    metadata = onnx_metadata(data)
    if metadata.get(FORMAT_KEY) != ARTIFACT_FORMAT:
        raise ArtifactError(f"{where}: not a mayo-dx artifact (no {FORMAT_KEY!r} = {ARTIFACT_FORMAT!r} metadata)")
    computed = graph_sha256(data)
    if metadata.get(GRAPH_SHA256_KEY) != computed:
        raise ArtifactError(f"{where}: the graph (weights or nodes) does not match its recorded SHA-256: tampered or corrupt")
    return metadata, computed


def _check_expected(sha256: str, expected: str | None, where: str) -> None:
    if expected is not None and sha256 != expected.lower():
        raise ArtifactError(f"{where}: artifact SHA-256 {sha256[:16]}... differs from the expected {expected[:16]}...")


def _read_single(path: Path, expected_sha256: str | None) -> Artifact:
    data = _read_bytes(path)
    sha256 = sha256_hex(data)
    _check_expected(sha256, expected_sha256, path.name)
    metadata, computed = _verify_onnx(data, path.name)
    text = metadata.get(CARD_KEY)
    if text is None:
        raise ArtifactError(f"{path.name}: no model card in the ONNX metadata ({CARD_KEY!r})")
    if metadata.get(CARD_SHA256_KEY) != sha256_hex(text.encode("utf-8")):
        raise ArtifactError(f"{path.name}: the model card does not match its recorded SHA-256: tampered")
    card = _card_from_text(text, path.name)
    recorded = dict(card.extra.get("export", {})).get("graph_sha256")
    if recorded != computed:
        raise ArtifactError(f"{path.name}: the card's export record names another graph: card and weights were mixed")
    return Artifact(path=path, card=card, sha256=sha256, stages={"model": data}, graph_sha256={"model": computed})


def _manifest(path: Path) -> tuple[dict[str, Any], bytes]:
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise ArtifactError(f"{path.name}: an artifact folder needs manifest.json")
    raw = _read_bytes(manifest_path)
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ArtifactError(f"{path.name}/manifest.json is not valid JSON (truncated?)") from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ArtifactError(f"{path.name}/manifest.json: format must be {MANIFEST_FORMAT!r}")
    return manifest, raw


def _listed_file(folder: Path, entry: Mapping[str, Any]) -> bytes:
    name = str(entry.get("file", ""))
    if not _SAFE_NAME.match(name) or name in ("manifest.json",):
        raise ArtifactError(f"{folder.name}/manifest.json names an unsafe file {name!r}")
    data = _read_bytes(folder / name)
    if sha256_hex(data) != entry.get("sha256"):
        raise ArtifactError(f"{folder.name}/{name} does not match its SHA-256 in manifest.json: tampered or truncated")
    return data


def _read_folder(path: Path, expected_sha256: str | None) -> Artifact:
    manifest, raw = _manifest(path)
    sha256 = sha256_hex(raw)
    _check_expected(sha256, expected_sha256, path.name)
    card_entry = manifest.get("card")
    stage_entries = manifest.get("stages")
    if not isinstance(card_entry, dict) or not isinstance(stage_entries, list) or not stage_entries:
        raise ArtifactError(f"{path.name}/manifest.json needs a 'card' entry and a non-empty 'stages' list")
    card = _card_from_text(_listed_file(path, card_entry).decode("utf-8", errors="strict"), f"{path.name}/card.json")
    carded = {item.get("name"): item.get("graph_sha256") for item in card.extra.get("export", {}).get("stages", [])}
    stages: dict[str, bytes] = {}
    hashes: dict[str, str] = {}
    for entry in stage_entries:
        name = str(entry.get("name", ""))
        if not _SAFE_NAME.match(name) or name in stages:
            raise ArtifactError(f"{path.name}/manifest.json: stage name {name!r} is unsafe or repeated")
        data = _listed_file(path, entry)
        metadata, computed = _verify_onnx(data, f"{path.name}/{entry['file']}")
        if metadata.get(STAGE_KEY) != name or entry.get("graph_sha256") != computed or carded.get(name) != computed:
            raise ArtifactError(f"{path.name}: stage {name!r} does not match the card and manifest (files swapped?)")
        stages[name] = data
        hashes[name] = computed
    if set(carded) != set(stages):
        raise ArtifactError(f"{path.name}: the card lists stages {sorted(carded)}, the manifest {sorted(stages)}")
    return Artifact(path=path, card=card, sha256=sha256, stages=stages, graph_sha256=hashes)


def read_artifact(path: str | Path, *, expected_sha256: str | None = None) -> Artifact:
    """Read and verify an artifact (``.onnx`` file or artifact folder).

    Args:
        path: The ``.onnx`` file or the folder holding ``manifest.json``.
        expected_sha256: Refuse the artifact unless its artifact SHA-256 equals this.

    Returns:
        The verified :class:`Artifact`.

    Raises:
        ArtifactError: Missing, empty, truncated, tampered or inconsistent artifact.

    Example:
        >>> read_artifact("models/ecg_xresnet1d101.onnx").card.task  # doctest: +SKIP
        'ecg'
    """
    given = Path(path)
    if given.is_dir():
        return _read_folder(given, expected_sha256)
    if not given.is_file():
        raise ArtifactError(f"{given.name}: no such artifact file or folder")
    return _read_single(given, expected_sha256)
