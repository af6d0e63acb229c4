"""Write one section of ``benchmarks/RESULTS.md``, replacing the section of the same title.

Every benchmark with ``--write`` goes through :func:`write_section`, so the file keeps one
section per benchmark, in the order they were first written.

Example:
    >>> import tempfile
    >>> path = Path(tempfile.mkdtemp()) / "RESULTS.md"
    >>> write_section("## A", "## A\\n\\nfirst\\n", path)
    >>> write_section("## B", "## B\\n\\nsecond\\n", path)
    >>> write_section("## A", "## A\\n\\nagain\\n", path)
    >>> print(path.read_text())
    # Benchmark results
    <BLANKLINE>
    Each section names the command that produced it.
    <BLANKLINE>
    ## A
    <BLANKLINE>
    again
    <BLANKLINE>
    ## B
    <BLANKLINE>
    second
    <BLANKLINE>
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["RESULTS", "write_section"]

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section names the command that produced it.\n"


def write_section(title: str, text: str, path: Path = RESULTS) -> None:
    """Replace the section starting with ``title`` (up to the next ``## `` heading) by ``text``, or append it.

    Args:
        title: The section's heading line, e.g. ``"## ECG runtime speed"``.
        text: The whole new section, heading included.
        path: The results file (default ``benchmarks/RESULTS.md``).
    """
    content = path.read_text() if path.is_file() else HEADER
    section = text.rstrip("\n") + "\n"
    if title in content:
        start = content.index(title)
        following = content.find("\n## ", start + len(title))
        content = content[:start] + section + (content[following:] if following >= 0 else "")
    else:
        content = content.rstrip("\n") + "\n\n" + section
    path.write_text(content.rstrip("\n") + "\n")
