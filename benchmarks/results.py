"""RESULTS.md is shared by the benchmarks: each owns one section, between markers, and
rewrites only that section, so running one benchmark keeps the others' latest figures."""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
HEADER = "# Benchmark results\n\nEach section says the command that produced it. Shared, noisy machines: read medians and ratios.\n"


def write_section(name: str, text: str) -> None:
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{text.strip()}\n{end}"
    current = RESULTS.read_text() if RESULTS.exists() else HEADER
    if not current.startswith(HEADER):  # the single-section file of earlier versions
        current = HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.S)
    updated = pattern.sub(lambda _: block, current) if pattern.search(current) else current.rstrip() + "\n\n" + block
    RESULTS.write_text(updated.rstrip() + "\n")
