"""`python -m bench`: run the benchmarks B1..B15 and print (and save) the results table.

    .venv/bin/python -m bench             # the full run (about 5-10 minutes on 2 cores)
    .venv/bin/python -m bench --smoke     # tiny sizes, well under a minute
    .venv/bin/python -m bench --only B2,B5

Each benchmark starts the HubSpot sandbox (`python -m sandbox`) and the service
(`python -m app`) in their own processes on 127.0.0.1 and stops them again, also on errors
and Ctrl-C. Results go to stdout and to bench/results/latest.json. The exit status is 0
when every benchmark could be measured (whether or not its target holds), else 1.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from .cases import CASES, FULL, SMOKE, Row
from .report import machine, table, write_json

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: checks the harness works")
    parser.add_argument("--only", type=lambda text: [part.strip().upper() for part in text.split(",")],
                        default=list(CASES), help="comma-separated benchmarks to run, e.g. B2,B5")
    parser.add_argument("--json", type=Path, default=RESULTS, help=f"where to write the results (default {RESULTS})")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.only) - set(CASES))
    if unknown:
        parser.error(f"unknown benchmarks {unknown}; known: {', '.join(CASES)}")
    return args


def _terminate(signum: int, frame: Any) -> NoReturn:
    raise KeyboardInterrupt  # so that every started process is stopped on the way out


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where a shell ignored it
    sizes = SMOKE if args.smoke else FULL
    info: dict[str, Any] = {"machine": machine(), "mode": "smoke" if args.smoke else "full",
                            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    m = info["machine"]
    print(f"machine: nproc {m['nproc']}, {m['cpu']}, Python {m['python']}, load {m['load_average_1m']}", flush=True)
    rows: list[Row] = []
    notes: list[str] = []
    failed = interrupted = False
    began = time.monotonic()
    for case in args.only:
        print(f"[{case}] running ...", flush=True)
        case_began = time.monotonic()
        try:
            rows += CASES[case](sizes, notes)
        except KeyboardInterrupt:
            interrupted = failed = True
            notes.append(f"{case}: interrupted")
            break
        except Exception as exc:  # one broken benchmark must not hide the others' results
            failed = True
            rows.append(Row(case, f"ERROR {type(exc).__name__}: {str(exc)[:160]}", "-", "-", "-", "-", False))
        print(f"[{case}] {time.monotonic() - case_began:.1f} s", flush=True)
    info["seconds"] = round(time.monotonic() - began, 1)
    info["notes"] = notes
    write_json(args.json, info, rows)
    print()
    print(table(rows))
    for note in notes:
        print(f"note: {note}")
    print(f"\n{info['mode']} run: {info['seconds']} s; results in {args.json}")
    return 130 if interrupted else int(failed)


if __name__ == "__main__":
    sys.exit(main())
