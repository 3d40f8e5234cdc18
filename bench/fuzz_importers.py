"""A long fuzz run of the importers: the inputs of tests/importer_fuzz.py, many more of them.

    .venv/bin/python bench/fuzz_importers.py [--examples 20000] [--seed N]

Prints the examples tried, how many went in, how many failed cleanly (InputError) and the failures that
were not clean (a traceback, an unprintable message, a wrong exit code), the first few in full. Exits 1 if
there was any. The suite runs the same property on a bounded number of examples (test_fuzz_importers.py).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from hypothesis import HealthCheck, given, seed, settings  # noqa: E402
from importer_fuzz import inputs, traceback_of  # noqa: E402  (tests/ is on sys.path above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    tried = 0
    failures: list[str] = []
    started = time.perf_counter()

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(inputs)
    def run(case: tuple[str, bytes]) -> None:
        nonlocal tried
        tried += 1
        problem = traceback_of(*case)
        if problem is not None:
            failures.append(problem)

    if args.seed is not None:
        run = seed(args.seed)(run)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zip archives with duplicate members are part of the fuzz
        run()
    seconds = time.perf_counter() - started
    print(f"examples tried: {tried} in {seconds:.1f} s ({tried / seconds:.0f}/s)")
    print(f"failures (tracebacks or unclean errors): {len(failures)}")
    for problem in failures[:5]:
        print("-" * 80)
        print(problem)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
