"""scripts/install-llama-cpp.sh: its flags per platform, its wheel cache key, and what it runs.

The platform is faked with an `uname` first on PATH; the build with a fake Python that logs each call and
writes an empty wheel, so these tests take a second and build nothing (the real build is proven by the e2e
tests of test_llama_backend.py, which run the installed wheel).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "install-llama-cpp.sh"
X86_FLAGS = ("AVX", "F16C", "FMA", "BMI2", "SSE42", "AMX", "AVX512", "AVX_VNNI")


def fake_uname(tmp_path: Path, system: str, machine: str) -> Path:
    bin_dir = tmp_path / f"uname-{system}-{machine}"
    bin_dir.mkdir()
    uname = bin_dir / "uname"
    uname.write_text(f'#!/bin/sh\ncase "$1" in -s) echo {system} ;; -m) echo {machine} ;; *) echo {system} ;; esac\n')
    uname.chmod(0o755)
    return bin_dir


def script(*args: str, env: dict[str, str] | None = None, path: Path | None = None) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k not in {"CMAKE_ARGS", "PLLM_REBUILD", "LLAMA_CPP_VERSION"}}
    if path is not None:
        environment["PATH"] = f"{path}{os.pathsep}{environment['PATH']}"
    environment.update(env or {})
    return subprocess.run(
        ["bash", str(SCRIPT), *args], capture_output=True, text=True, env=environment, timeout=120, check=False
    )


def printed(*args: str, **kwargs: object) -> dict[str, str]:
    done = script("--print", *args, **kwargs)  # type: ignore[arg-type]
    assert done.returncode == 0, done.stderr
    return dict(line.split("=", 1) for line in done.stdout.splitlines())


def test_x86_64_linux_builds_every_cpu_variant_for_runtime_dispatch(tmp_path: Path) -> None:
    done = script("--cmake-args", path=fake_uname(tmp_path, "Linux", "x86_64"))
    args = done.stdout.split()
    assert {"-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"} <= set(args)
    assert "-DCMAKE_INSTALL_BINDIR=llama_cpp/lib" in args  # the variant modules beside libggml in the wheel
    assert not [a for a in args if a.startswith("-DGGML_") and a.split("=")[0][len("-DGGML_") :] in X86_FLAGS]


@pytest.mark.parametrize(("system", "machine"), [("Linux", "aarch64"), ("Darwin", "arm64"), ("Darwin", "x86_64")])
def test_no_x86_flags_elsewhere(tmp_path: Path, system: str, machine: str) -> None:
    done = script("--cmake-args", path=fake_uname(tmp_path, system, machine))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["-DLLAVA_BUILD=OFF"]  # llama.cpp's own default for the CPU at hand


def test_users_cmake_args_win(tmp_path: Path) -> None:
    done = script("--cmake-args", env={"CMAKE_ARGS": "-DGGML_NATIVE=ON -DGGML_BLAS=ON"})
    assert done.stdout.strip() == "-DGGML_NATIVE=ON -DGGML_BLAS=ON"


def test_cache_key_inputs(tmp_path: Path) -> None:
    env = {"PLLM_WHEEL_CACHE": str(tmp_path / "wheels")}
    x86 = fake_uname(tmp_path, "Linux", "x86_64")
    default = printed(sys.executable, env=env, path=x86)
    inputs = default["key_inputs"]
    assert "recipe=" in inputs and "version=0.3.36" in inputs and "machine=x86_64" in inputs
    assert f"python={sys.implementation.cache_tag} " in inputs
    assert inputs.endswith("cpu=any")  # the all-variants wheel runs on any x86-64: not keyed by this CPU
    assert default["cache"].startswith(str(tmp_path / "wheels" / "llama-cpp-python-0.3.36-"))
    other_version = printed(sys.executable, env={**env, "LLAMA_CPP_VERSION": "0.3.35"}, path=x86)
    other_flags = printed(sys.executable, env={**env, "CMAKE_ARGS": "-DGGML_NATIVE=OFF -DGGML_AVX2=ON"}, path=x86)
    arm = printed(sys.executable, env=env, path=fake_uname(tmp_path, "Linux", "aarch64"))
    caches = {default["cache"], other_version["cache"], other_flags["cache"], arm["cache"]}
    assert len(caches) == 4
    assert other_flags["key_inputs"].endswith("cpu=any")
    assert not arm["key_inputs"].endswith("cpu=any")  # a native build is keyed by the CPU's features


FAKE_PYTHON = """#!/usr/bin/env bash
# Logs every call; `pip wheel` writes an empty wheel; the check fails when FAKE_CHECK_FAILS is set.
echo "CMAKE_ARGS=$CMAKE_ARGS :: $*" >> "$FAKE_LOG"
if [[ $1 == -c ]]; then exec {python} "$@"; fi
if [[ $1 == -m && $2 == pip && $3 == wheel ]]; then
    while [[ $# -gt 0 ]]; do
        if [[ $1 == -w ]]; then : > "$2/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"; fi
        shift
    done
    exit 0
fi
if [[ $1 == -m && $2 == pllm_cli.llama_check && -n ${{FAKE_CHECK_FAILS-}} ]]; then
    echo "Error: Illegal instruction (SIGILL): this llama-cpp-python was built for another CPU" >&2
    exit 6
fi
exit 0
"""


@pytest.fixture
def fake_python(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A fake Python on an x86-64 Linux (a fake uname first on PATH), with its log and wheel cache."""
    bin_dir = fake_uname(tmp_path, "Linux", "x86_64")
    python = bin_dir / "python"
    python.write_text(FAKE_PYTHON.format(python=sys.executable))
    python.chmod(0o755)
    env = {
        "FAKE_LOG": str(tmp_path / "log"),
        "PLLM_WHEEL_CACHE": str(tmp_path / "wheels"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
    }
    return python, env


def calls(env: dict[str, str]) -> list[str]:
    log = Path(env["FAKE_LOG"])
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [line for line in lines if " :: -c " not in line]


def test_builds_once_then_reinstalls_for_real_and_checks(fake_python: tuple[Path, dict[str, str]]) -> None:
    python, env = fake_python
    done = script(str(python), env=env)
    assert done.returncode == 0, done.stderr
    first = calls(env)
    wheel_calls = [c for c in first if ":: -m pip wheel" in c]
    assert len(wheel_calls) == 1 and "-DGGML_BACKEND_DL=ON" in wheel_calls[0].split(" :: ")[0]
    assert "--no-cache-dir --no-deps llama-cpp-python==0.3.36" in wheel_calls[0]
    cache = printed(str(python), env=env)["cache"]
    wheel = f"{cache}/llama_cpp_python-0.3.36-py3-none-linux_x86_64.whl"
    assert any(c.endswith(f":: -m pip install --quiet --force-reinstall --no-deps {wheel}") for c in first)
    assert first[-1].endswith(":: -m pllm_cli.llama_check")
    second = calls(env) if script(str(python), env=env).returncode == 0 else ["failed"]
    assert not [c for c in second if ":: -m pip wheel" in c]  # the cached wheel
    assert any("--force-reinstall --no-deps" in c for c in second)  # installed over the old one all the same
    assert script(str(python), env={**env, "PLLM_REBUILD": "1"}).returncode == 0
    assert [c for c in calls(env) if ":: -m pip wheel" in c]


def test_a_failed_check_stops_the_setup_with_how_to_rebuild(fake_python: tuple[Path, dict[str, str]]) -> None:
    python, env = fake_python
    done = script(str(python), env={**env, "FAKE_CHECK_FAILS": "1"})
    assert done.returncode == 1
    assert "Illegal instruction (SIGILL)" in done.stderr
    assert f"PLLM_REBUILD=1 bash scripts/install-llama-cpp.sh {python}" in done.stderr
    assert printed(str(python), env=env)["cache"] in done.stderr
