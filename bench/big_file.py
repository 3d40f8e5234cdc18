"""One large text file through `pllm ingest`: peak memory, time, and what a kill half-way keeps.

    .venv/bin/python bench/big_file.py [--mb 50] [--fake-embedder] [--kill-after SECONDS]

Generates a markdown file of --mb MiB (headings and paragraphs of varied prose) and ingests it in a fresh
PLLM_HOME as a whole process, with its peak RSS (os.wait4) and wall time. A file over
pllm_cli.ingest.files.LARGE_FILE_BYTES is read, embedded and committed a part at a time (docs/formats.md),
so the peak should not grow with the file. With the real embedding model 50 MiB takes long on a small
machine: --fake-embedder (the tests' hashing embedder, tests/pllm_with_fakes.py) measures everything but the
model; --kill-after SECONDS sends SIGKILL then, prints what memory kept, and runs the ingest again to finish.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import clean_env, measured  # noqa: E402  (bench/ is on sys.path when a script here runs)

WORDS = (
    "the a we I you it is was to and of in for on with at this that garden heron river morning letter train "
    "sister harbour winter bread lantern orchard violin cousin meeting deadline trip museum kettle bicycle"
).split()


def generate(path: Path, mib: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    target = mib * 1024 * 1024
    written = 0
    with path.open("w", encoding="utf-8") as handle:
        chapter = 0
        while written < target:
            if rng.random() < 0.01:
                chapter += 1
                line = f"\n## Chapter {chapter}\n\n"
            else:
                words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 160)))
                line = words.capitalize() + ".\n\n"
            handle.write(line)
            written += len(line.encode("utf-8"))


def command(fake: bool) -> list[str]:
    return [sys.executable, str(ROOT / "tests" / "pllm_with_fakes.py")] if fake else [sys.executable, "-m", "pllm_cli"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=50, help="size of the file, MiB")
    parser.add_argument("--fake-embedder", action="store_true", help="the tests' hashing embedder, not MiniLM")
    parser.add_argument("--kill-after", type=float, default=0.0, help="SIGKILL the ingest after this many s")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        big = folder / "big.md"
        generate(big, args.mb)
        env = clean_env(folder / "home")
        env["PYTHONPATH"] = str(ROOT)
        pllm = command(args.fake_embedder)
        print(f"file: {big.stat().st_size / 2**20:.1f} MiB, embedder: {'fake' if args.fake_embedder else 'real'}")
        if args.kill_after:
            process = subprocess.Popen([*pllm, "ingest", str(big)], env=env, stderr=subprocess.DEVNULL)
            time.sleep(args.kill_after)
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            rows = json.loads(measured([*pllm, "memory", "sources", "--json"], env)[0] or "null")
            print(f"killed after {args.kill_after:.0f} s: memory holds {rows and rows['chunks']} chunks, {rows}")
        out, wall, peak = measured([*pllm, "ingest", str(big), "--json"], env)
        report = json.loads(out)
        print(f"ingest: {wall:.1f} s, peak RSS {peak:.0f} MB, {report['chunks_written']} chunks")
        print(f"status: {report['files'][0]['status']}")


if __name__ == "__main__":
    main()
