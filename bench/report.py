"""The machine the benchmarks ran on, the results table and its JSON copy."""

from __future__ import annotations

import dataclasses
import json
import os
import platform
from pathlib import Path
from typing import Any, Sequence

from .cases import Row

COLUMNS = ("id", "what", "measured", "reference", "ratio/value", "target", "holds?")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": len(os.sched_getaffinity(0)), "cpu": model, "python": platform.python_version(),
            "load_average_1m": round(os.getloadavg()[0], 2)}


def holds(row: Row) -> str:
    return {True: "yes", False: "NO", None: "-"}[row.holds]


def table(rows: Sequence[Row]) -> str:
    cells = [COLUMNS] + [(r.id, r.what, r.measured, r.reference, r.value, r.target, holds(r)) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def write_json(path: Path, info: dict[str, Any], rows: Sequence[Row]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    document = {**info, "rows": [{**dataclasses.asdict(row), "holds": row.holds} for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")
