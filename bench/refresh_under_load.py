"""`pllm profile refresh` and a cold `pllm ask` on an idle machine and with one core kept busy, in one run.

    .venv/bin/python bench/refresh_under_load.py [--repeats 1] [--json]

examples/ is ingested (README.md excluded, `me` set to Maya, as `make demo` does) into a fresh temporary
PLLM_HOME. Then, REPEATS times and alternating, idle and busy (a second process spinning on one core, as a
browser, a build or another cron job does): `pllm --no-server profile refresh --rebuild --json` (the whole
profile, read again from every chunk) and `pllm --no-server ask --json --seed 1 QUESTION`. The figure to read
is the ratio busy / idle of each: pllm gives llama.cpp one thread per core that other programs leave free
(pllm_cli/cpu_load.py); with every core it would be many times slower (bench/threads_under_load.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from common import OtherLoad, clean_env, measured, pllm_command, set_up_demo_home  # noqa: E402  (bench/ is on sys.path when a script here runs)

QUESTION = "Who is my manager, and when is my project deadline?"  # the Makefile's DEMO_QUESTION


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def one_round(env: dict[str, str], busy: bool) -> dict[str, float]:
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        refresh = [*pllm_command(), "--no-server", "profile", "refresh", "--rebuild", "--json"]
        out, refresh_wall, _ = measured(refresh, env)
        report = json.loads(out)
        out, ask_wall, _ = measured([*pllm_command(), "--no-server", "ask", "--json", "--seed", "1", QUESTION], env)
        reply = json.loads(out)
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return {
        "refresh_wall_s": refresh_wall,
        "refresh_s": float(report.get("seconds", 0.0)),
        "statements": float(report.get("statements", 0)),
        "ask_wall_s": ask_wall,
        "ask_first_token_s": float(reply["timings"].get("first_token_s", 0.0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=1, help="rounds of idle + busy (default 1)")
    parser.add_argument("--json", action="store_true", help="JSON object on stdout instead of the text report")
    args = parser.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"idle": [], "busy": []}
    with tempfile.TemporaryDirectory(prefix="pllm-bench-refresh-") as tmp:
        env = clean_env(Path(tmp) / "home")
        log("ingesting examples/ ...")
        set_up_demo_home(env)
        for repeat in range(args.repeats):
            for state in ("idle", "busy"):
                load = OtherLoad()
                row = one_round(env, busy=state == "busy")
                row["other_cores"] = load.cores()
                rows[state].append(row)
                log(
                    f"round {repeat + 1}, {state}: refresh {row['refresh_wall_s']:.1f} s, ask {row['ask_wall_s']:.1f} s"
                    f" (first token {row['ask_first_token_s']:.2f} s); other processes {row['other_cores']:.2f} cores"
                )
    median = {state: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for state, runs in rows.items()}
    ratios = {k: median["busy"][k] / median["idle"][k] for k in ("refresh_wall_s", "ask_wall_s", "ask_first_token_s")}
    result: dict[str, Any] = {
        "runs": {s: [{k: round(v, 3) for k, v in r.items()} for r in runs] for s, runs in rows.items()},
        "median": {s: {k: round(v, 3) for k, v in m.items()} for s, m in median.items()},
        "busy_over_idle": {k: round(v, 2) for k, v in ratios.items()},
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    idle, busy = median["idle"], median["busy"]
    print(f"examples/ ingested; {args.repeats} round(s) of idle and busy (one core kept busy by a spinning process)")
    print(
        f"pllm profile refresh --rebuild ({idle['statements']:.0f} statements): idle {idle['refresh_wall_s']:.1f} s,"
        f" busy {busy['refresh_wall_s']:.1f} s: x{ratios['refresh_wall_s']:.2f}"
    )
    print(
        f"pllm ask (cold process): wall idle {idle['ask_wall_s']:.2f} s, busy {busy['ask_wall_s']:.2f} s: "
        f"x{ratios['ask_wall_s']:.2f}; first token idle {idle['ask_first_token_s']:.2f} s, busy "
        f"{busy['ask_first_token_s']:.2f} s: x{ratios['ask_first_token_s']:.2f}"
    )
    print(
        f"other processes meanwhile, the spinner not counted: idle rounds {idle['other_cores']:.2f} cores, busy "
        f"rounds {busy['other_cores']:.2f} (above ~0.2 the figures are disturbed)"
    )


if __name__ == "__main__":
    main()
