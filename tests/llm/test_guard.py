"""Each guard point: paths, links, special files, limits, time, PHI scrubbing, audit log."""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest

from mayo_dx.errors import LimitExceeded, PathNotAllowed
from mayo_dx.llm.audit import AuditLog
from mayo_dx.llm.guard import Limits, PathGuard, run_with_timeout
from mayo_dx.llm.phi import REDACTED, PhiScrubber, collect_identifiers
from mayo_dx.llm.toolbox import Toolbox
from tests.llm.conftest import WFDB_PLANTED_COMMENTS, assert_no_phi


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    folder = tmp_path / "root"
    (folder / "ecg").mkdir(parents=True)
    (folder / "ecg" / "a.hea").write_text("a 1 500 10\na.dat 16 1000 16 0 0 0 0 I\n")
    (folder / "ecg" / "a.dat").write_bytes(b"\x00" * 20)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.hea").write_text("secret 1 500 10\n")
    return folder


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ("../outside/secret.hea", "'..'"),
        ("ecg/../../outside/secret.hea", "'..'"),
        ("ecg\\..\\..\\outside\\secret.hea", "'..'"),
        ("ecg/a.hea\x00.png", "null byte"),
        ("https://example.org/a.hea", "URLs are not accepted"),
        ("file:///etc/passwd", "URLs are not accepted"),
        ("s3://bucket/a.hea", "URLs are not accepted"),
        ("C:/Windows/a.hea", "URLs are not accepted"),
        ("//server/share/a.hea", "network paths"),
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 2000, "longer than"),
    ],
)
def test_refused_path_strings(root: Path, given: str, fragment: str) -> None:
    with pytest.raises(PathNotAllowed, match=fragment):
        PathGuard([root]).resolve(given)


def test_non_string_paths_are_refused(root: Path) -> None:
    for given in (None, 42, ["a"], {"path": "a"}):
        with pytest.raises(PathNotAllowed, match="must be a string"):
            PathGuard([root]).resolve(given)


def test_absolute_paths_inside_pass_outside_fail(root: Path) -> None:
    guard = PathGuard([root])
    assert guard.resolve(str(root / "ecg" / "a.hea")) == (root / "ecg" / "a.hea").resolve()
    with pytest.raises(PathNotAllowed, match="outside the allowed data roots"):
        guard.resolve(str(root.parent / "outside" / "secret.hea"))
    with pytest.raises(PathNotAllowed, match="outside"):
        guard.resolve("/etc/passwd")


def test_symlinks_are_followed_before_the_check(root: Path) -> None:
    (root / "ecg" / "escape.hea").symlink_to(root.parent / "outside" / "secret.hea")
    (root / "linked_folder").symlink_to(root.parent / "outside")
    (root / "ecg" / "inside_link.hea").symlink_to(root / "ecg" / "a.hea")
    guard = PathGuard([root])
    with pytest.raises(PathNotAllowed, match="outside"):
        guard.resolve("ecg/escape.hea")
    with pytest.raises(PathNotAllowed, match="outside"):
        guard.resolve("linked_folder/secret.hea")
    assert guard.resolve("ecg/inside_link.hea").name == "a.hea"


def test_a_root_given_through_a_link_still_bounds(root: Path, tmp_path: Path) -> None:
    link = tmp_path / "root_link"
    link.symlink_to(root)
    guard = PathGuard([link])
    assert guard.resolve("ecg/a.hea").name == "a.hea"
    with pytest.raises(PathNotAllowed):
        guard.resolve(str(tmp_path / "outside" / "secret.hea"))


def test_fifo_socket_and_device_files_are_refused_without_opening(root: Path) -> None:
    os.mkfifo(root / "ecg" / "pipe.hea")  # opening it would block: the guard must only stat it
    with pytest.raises(PathNotAllowed, match="FIFO"):
        PathGuard([root]).resolve("ecg/pipe.hea")
    with pytest.raises(PathNotAllowed, match="device file"):
        PathGuard(["/dev"]).resolve("null")
    import socket

    socket_path = root / "s.sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(socket_path))
        with pytest.raises(PathNotAllowed, match="socket"):
            PathGuard([root]).resolve("s.sock")
    finally:
        server.close()


def test_size_and_count_limits(root: Path) -> None:
    guard = PathGuard([root], Limits(max_file_bytes=10, max_series_files=3))
    with pytest.raises(LimitExceeded, match="above the limit"):
        guard.check_file(root / "ecg" / "a.dat")
    series = root / "series"
    series.mkdir()
    for index in range(4):
        (series / f"{index}.dcm").write_bytes(b"0")
    with pytest.raises(LimitExceeded, match="more than 3 files"):
        guard.series_files(series)
    total = PathGuard([root], Limits(max_series_bytes=3))
    with pytest.raises(LimitExceeded, match="MiB"):
        total.series_files(series)


def test_a_link_inside_a_series_folder_is_refused(root: Path) -> None:
    series = root / "series"
    series.mkdir()
    (series / "1.dcm").symlink_to(root.parent / "outside" / "secret.hea")
    with pytest.raises(PathNotAllowed, match="outside"):
        PathGuard([root]).series_files(series)


def test_timeout_abandons_a_slow_call() -> None:
    started = time.perf_counter()
    with pytest.raises(LimitExceeded, match="longer than the limit"):
        run_with_timeout(lambda: time.sleep(2), 0.2)
    assert time.perf_counter() - started < 1.0
    with pytest.raises(ZeroDivisionError):
        run_with_timeout(lambda: 1 / 0, 1.0)


def test_wfdb_header_naming_a_file_outside_the_root_is_refused(root: Path, empty_models: Path) -> None:
    (root / "ecg" / "evil.hea").write_text("evil 1 500 10\n../../outside/secret.hea 16 1000 16 0 0 0 0 I\n")
    result = Toolbox(empty_models, [root]).call("render_ecg", {"path": "ecg/evil.hea"}).structured
    assert result["status"] == "cannot_assess" and result["error_type"] == "PathNotAllowed", result


def test_scrubber_patterns_and_keep() -> None:
    scrubber = PhiScrubber(["PLANTEDACC0001", "Planted General Hospital"], keep=["426783006", "164865005"])
    text = ("Doe^John, MRN 12345678, born 19450704 (1945-07-04 or 04/07/1945), call +1-555-0100 or (555) 123-4567, "
            "mail john.doe@example.org, SSN 123-45-6789, accession plantedacc0001 at PLANTED GENERAL HOSPITAL; "
            "codes 426783006 and 164865005; probability 0.81, 72 bpm, 10000 samples")
    scrubbed = scrubber.scrub_text(text)
    for secret in ("Doe^John", "12345678", "19450704", "1945-07-04", "04/07/1945", "555", "john.doe", "123-45-6789",
                   "plantedacc0001", "GENERAL HOSPITAL"):
        assert secret.lower() not in scrubbed.lower(), (secret, scrubbed)
    for kept in ("426783006", "164865005", "0.81", "72 bpm", "10000 samples"):
        assert kept in scrubbed
    assert scrubber.scrub({"value": 19450704.0, "list": ["Doe^John"]}) == {"value": 19450704.0, "list": [REDACTED]}


def test_identifiers_are_collected_from_dicom_and_wfdb_headers(data_root: Path) -> None:
    found = collect_identifiers([data_root / "ecg" / "record_a.hea", data_root / "ct" / "series_a" / "slice_0001.dcm"])
    assert "PLANTED-WFDB-0042" in found and "Planted Memorial Hospital" in found
    assert "Planted^Identifier^Case0001" in found and "PLANTED-MRN-000001" in found and "19450704" in found
    assert "Planted General Hospital" in found and "PLANTEDACC0001" in found
    assert "mayo-dx phantom" not in found and "CT" not in found  # technical text is not an identifier
    assert any("Planted" in item for item in found if item in WFDB_PLANTED_COMMENTS or ":" not in item)


def test_audit_log_lines_hold_no_path_and_no_phi(data_root: Path, empty_models: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "audit" / "calls.jsonl"
    audit = AuditLog(log_path, hash_key=b"fixed")
    toolbox = Toolbox(empty_models, [data_root], audit=audit)
    toolbox.call("render_ecg", {"path": "ecg/record_a.hea", "saliency": False})
    toolbox.call("analyze_ecg", {"path": "../etc/passwd"})
    toolbox.call("Planted^Patient^Name", {})
    audit.close()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()]
    assert [line["tool"] for line in lines] == ["render_ecg", "analyze_ecg", "<unknown tool>"]
    assert lines[0]["outcome"] == "rendered" and lines[0]["input_hash"] == audit.input_hash(
        (data_root / "ecg" / "record_a.hea").resolve())
    assert lines[1]["outcome"] == "cannot_assess" and lines[1]["error_type"] == "PathNotAllowed"
    assert all(set(line) == {"time", "tool", "input_hash", "model", "model_sha256", "outcome", "decision",
                             "error_type", "latency_ms"} for line in lines)
    text = log_path.read_text()
    assert "record_a" not in text and "passwd" not in text
    assert_no_phi(text, "audit log")


def test_audit_log_is_off_by_default_and_can_go_to_a_stream() -> None:
    assert not AuditLog().enabled
    stream = io.StringIO()
    AuditLog(stream=stream).record(tool="list_models", outcome="listed", latency_s=0.01)
    assert json.loads(stream.getvalue())["latency_ms"] == 10.0
