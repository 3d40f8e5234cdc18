"""Runtime CPU dispatch for llama.cpp: load the CPU code built for the CPU at hand, never AMX.

scripts/install-llama-cpp.sh builds llama-cpp-python on x86-64 with GGML_BACKEND_DL and GGML_CPU_ALL_VARIANTS:
the CPU code is not linked into libggml but compiled once per instruction-set level into modules beside it
(llama_cpp/lib/libggml-cpu-haswell.so, ...-zen4.so, ...). llama-cpp-python loads none of them, and llama.cpp's
own loader looks beside the executable and in the current directory only and ranks the AMX variant first, so
pllm registers one itself, before the first model, with the libggml that libllama uses.

A variant is never loaded when
- it uses AMX: some VMs advertise AMX in CPUID but do not allow it, and the first tile instruction dies;
- on Linux, the kernel does not list one of its instruction sets in /proc/cpuinfo (ggml's own check reads CPUID
  only and does not ask whether the OS enabled the registers);
- its own ggml_backend_score() is 0: the CPU lacks an instruction set it uses.
Of the others the one with the highest score wins; PLLM_CPU_VARIANT=NAME picks one of them by name instead.
A llama-cpp-python built the usual way (CPU code inside libggml, no variant modules) is left as it is.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import platform
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from pllm_cli.errors import ModelError

VARIANT_ENV = "PLLM_CPU_VARIANT"
VARIANT_PREFIX = "libggml-cpu-"
VARIANT_SUFFIX = ".so"  # ggml names its backend modules .so on Linux and macOS alike
SINGLE_MODULE = "libggml-cpu.so"  # GGML_BACKEND_DL without GGML_CPU_ALL_VARIANTS (or the linked-in CPU code)
LIBLLAMA_NAMES = ("libllama.so", "libllama.dylib")  # the order llama_cpp itself tries them
LLAMA_CPP_LOGGER = "llama-cpp-python"  # llama_cpp/_logger.py
BUILT_IN = "built-in"  # the CPU code is linked into libggml (a build without GGML_BACKEND_DL)
# ggml/src/ggml-cpu/arch/x86/cpu-feats.cpp: the one part of the x86 score that only a variant built with
# GGML_AMX_INT8 adds (every other instruction set adds a lower bit).
AMX_SCORE_BIT = 1 << 11
REBUILD_HINT = "rebuild llama-cpp-python: PLLM_REBUILD=1 bash scripts/install-llama-cpp.sh PYTHON (see docs/install.md)"

_HASWELL = ("sse4_2", "avx", "f16c", "fma", "avx2", "bmi2")
_AVX512 = ("avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw")
# The instruction sets each x86-64 variant is compiled for (ggml/src/CMakeLists.txt), as /proc/cpuinfo names them.
X86_VARIANT_FLAGS: dict[str, frozenset[str]] = {
    "x64": frozenset(),
    "sse42": frozenset({"sse4_2"}),
    "sandybridge": frozenset({"sse4_2", "avx"}),
    "ivybridge": frozenset({"sse4_2", "avx", "f16c"}),
    "piledriver": frozenset({"sse4_2", "avx", "f16c", "fma"}),
    "haswell": frozenset(_HASWELL),
    "skylakex": frozenset({*_HASWELL, *_AVX512}),
    "cannonlake": frozenset({*_HASWELL, *_AVX512, "avx512vbmi"}),
    "cascadelake": frozenset({*_HASWELL, *_AVX512, "avx512_vnni"}),
    "icelake": frozenset({*_HASWELL, *_AVX512, "avx512vbmi", "avx512_vnni"}),
    "cooperlake": frozenset({*_HASWELL, *_AVX512, "avx512_vnni", "avx512_bf16"}),
    "zen4": frozenset({*_HASWELL, *_AVX512, "avx512vbmi", "avx512_vnni", "avx512_bf16"}),
    "alderlake": frozenset({*_HASWELL, "avx_vnni"}),
    "sapphirerapids": frozenset(
        {*_HASWELL, *_AVX512, "avx512vbmi", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8"}
    ),
}
AMX_FLAGS = frozenset({"amx_tile", "amx_int8", "amx_bf16"})
USES_AMX = "uses AMX, which some VMs advertise but do not allow"


@dataclass(frozen=True)
class Candidate:
    """One variant module and why it was or was not chosen."""

    name: str  # "zen4" for libggml-cpu-zen4.so
    path: Path
    score: int | None  # its ggml_backend_score(); None when it was ruled out before being loaded
    rejected: str = ""  # why it may not run here; "" when it may


@dataclass(frozen=True)
class Selection:
    candidates: tuple[Candidate, ...]
    chosen: Candidate | None

    def summary(self) -> str:
        """'haswell 64, zen4 1984, alderlake: needs avx_vnni ...' for messages and `pllm status`."""
        return ", ".join(f"{c.name}: {c.rejected}" if c.rejected else f"{c.name} {c.score}" for c in self.candidates)


@dataclass(frozen=True)
class CpuBackend:
    """What runs llama.cpp's CPU code in this process."""

    variant: str  # a variant name ("zen4"), "cpu" (one module, no variants), BUILT_IN or "registered before pllm"
    path: Path | None = None
    selection: Selection | None = None


def variant_name(path: Path) -> str:
    return path.name[len(VARIANT_PREFIX) : -len(VARIANT_SUFFIX)]


def variant_files(lib_dir: Path) -> list[Path]:
    """The CPU variant modules in llama_cpp/lib, by name; none for a build with the CPU code linked in."""
    if not lib_dir.is_dir():
        return []
    return sorted(p for p in lib_dir.glob(f"{VARIANT_PREFIX}*{VARIANT_SUFFIX}") if p.is_file())


def read_cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str] | None:
    """The instruction sets the kernel enabled (the first `flags` line); None where there is no such line."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        key, colon, value = line.partition(":")
        if colon and key.strip() == "flags":
            return frozenset(value.split())
    return None


def select_variant(
    files: Iterable[Path],
    score: Callable[[Path], int],
    *,
    cpu_flags: frozenset[str] | None,
    x86: bool,
    forced: str | None = None,
) -> Selection:
    """The variant to load. `score(path)` returns the module's ggml_backend_score() (OSError if it cannot be
    loaded); it is not called for a variant ruled out by its name (AMX) or by `cpu_flags` (the kernel's list)."""
    candidates: list[Candidate] = []
    for path in files:
        name = variant_name(path)
        needs = X86_VARIANT_FLAGS.get(name) if x86 else None
        if needs is not None and needs & AMX_FLAGS:
            candidates.append(Candidate(name, path, None, USES_AMX))
            continue
        missing = sorted(needs - cpu_flags) if needs is not None and cpu_flags is not None else []
        if missing:
            candidates.append(Candidate(name, path, None, f"needs {' '.join(missing)}, which this CPU does not enable"))
            continue
        try:
            value = score(path)
        except OSError as exc:
            candidates.append(Candidate(name, path, None, f"cannot be loaded ({exc})"))
            continue
        if value <= 0:
            rejected = "this CPU lacks an instruction set it uses"
        elif x86 and value & AMX_SCORE_BIT:
            rejected = USES_AMX
        else:
            rejected = ""
        candidates.append(Candidate(name, path, value, rejected))
    eligible = [c for c in candidates if not c.rejected]
    selection = Selection(tuple(candidates), max(eligible, key=lambda c: c.score or 0, default=None))
    if not forced:
        return selection
    named = [c for c in candidates if c.name == forced]
    if not named:
        raise ModelError(
            f"{VARIANT_ENV}={forced}: no such llama.cpp CPU variant",
            hint=f"choose one of: {', '.join(c.name for c in eligible) or '(none runs here)'}",
        )
    if named[0].rejected:
        raise ModelError(
            f"{VARIANT_ENV}={forced}: that CPU variant may not run here: {named[0].rejected}",
            hint=f"choose one of: {', '.join(c.name for c in eligible) or '(none runs here)'}",
        )
    return Selection(selection.candidates, named[0])


def llama_lib_dir() -> Path | None:
    """llama_cpp/lib of the installed llama-cpp-python, found without importing it; None if not installed."""
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def is_x86_64() -> bool:
    return platform.machine().lower() in {"x86_64", "amd64"}


def choose_variant(files: Iterable[Path]) -> Selection:
    """select_variant() for this machine: ggml's scores, the kernel's flags on Linux, PLLM_CPU_VARIANT."""
    x86 = is_x86_64()
    flags = read_cpu_flags() if x86 and sys.platform.startswith("linux") else None
    return select_variant(files, ggml_score, cpu_flags=flags, x86=x86, forced=os.environ.get(VARIANT_ENV) or None)


def ggml_score(path: Path) -> int:
    """The module's own ggml_backend_score(): 0 when this CPU lacks an instruction set it was compiled for.

    The module needs libggml-base loaded already (libllama brings it); it is closed again afterwards."""
    library = ctypes.CDLL(str(path))
    try:
        try:
            function = library.ggml_backend_score
        except AttributeError:
            raise OSError("no ggml_backend_score: not a ggml backend") from None
        function.argtypes = []
        function.restype = ctypes.c_int
        return int(function())
    finally:
        _dlclose(library)


def _dlclose(library: ctypes.CDLL) -> None:
    if sys.platform != "win32":
        import _ctypes

        _ctypes.dlclose(library._handle)


class _Ggml:
    """ggml's backend registry, reached through libllama: a symbol looked up through a library's handle is
    searched in that library's own dependencies, so this is the very libggml llama.cpp uses (a second copy of
    libggml, opened by path, would keep a registry of its own)."""

    def __init__(self, lib_dir: Path) -> None:
        paths = [lib_dir / name for name in LIBLLAMA_NAMES if (lib_dir / name).is_file()]
        if not paths:
            raise ModelError(f"llama-cpp-python is incomplete: no libllama in {lib_dir}", hint=REBUILD_HINT)
        try:
            self.library = ctypes.CDLL(str(paths[0]))
        except OSError as exc:
            raise ModelError(f"cannot load {paths[0]}: {exc}", hint=REBUILD_HINT) from None
        self.library.ggml_backend_load.argtypes = [ctypes.c_char_p]
        self.library.ggml_backend_load.restype = ctypes.c_void_p
        self.library.ggml_backend_reg_by_name.argtypes = [ctypes.c_char_p]
        self.library.ggml_backend_reg_by_name.restype = ctypes.c_void_p

    def cpu_registered(self) -> bool:
        return bool(self.library.ggml_backend_reg_by_name(b"CPU"))

    def load(self, path: Path) -> bool:
        return bool(self.library.ggml_backend_load(os.fsencode(path)))


def quiet_llama_cpp_log() -> None:
    """llama.cpp logs each backend it loads ("load_backend: loaded CPU backend from ..."); llama_cpp prints
    its log unless its logger's level is raised, which Llama(verbose=False) does only later."""
    logger = logging.getLogger(LLAMA_CPP_LOGGER)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.ERROR)  # what Llama(verbose=False) sets


_lock = threading.Lock()
_loaded: CpuBackend | None = None


def load_cpu_backend() -> CpuBackend:
    """Register this CPU's variant with llama.cpp, once per process: call it before the first Llama(...)."""
    global _loaded
    with _lock:
        if _loaded is None:
            _loaded = _load_cpu_backend()
        return _loaded


def _load_cpu_backend() -> CpuBackend:
    lib_dir = llama_lib_dir()
    if lib_dir is None:
        raise ModelError("llama-cpp-python is not installed", hint="bash scripts/install-llama-cpp.sh PYTHON")
    import llama_cpp  # noqa: F401  (loads libllama and routes llama.cpp's log through llama_cpp's logger)

    quiet_llama_cpp_log()
    ggml = _Ggml(lib_dir)
    planned = plan_cpu_backend(lib_dir, ggml)
    if planned.path is not None and not ggml.load(planned.path):
        raise ModelError(f"llama.cpp could not load its CPU code {planned.path}", hint=REBUILD_HINT)
    return planned


def plan_cpu_backend(lib_dir: Path, ggml: _Ggml) -> CpuBackend:
    """What load_cpu_backend() loads (path) or finds registered (no path); loads nothing itself."""
    files = variant_files(lib_dir)
    if ggml.cpu_registered():  # linked into libggml, or registered by someone before pllm
        return CpuBackend("registered before pllm" if files else BUILT_IN)
    if files:
        selection = choose_variant(files)
        if selection.chosen is None:
            raise ModelError(
                f"none of llama.cpp's CPU variants may run on this CPU ({selection.summary()})", hint=REBUILD_HINT
            )
        return CpuBackend(selection.chosen.name, selection.chosen.path, selection)
    single = lib_dir / SINGLE_MODULE
    if single.is_file():
        return CpuBackend("cpu", single)  # GGML_BACKEND_DL without variants: one module, built for given flags
    raise ModelError(f"llama-cpp-python in {lib_dir.parent} has no CPU backend", hint=REBUILD_HINT)


def describe_cpu_backend() -> str:
    """For `pllm status`: the CPU variant this process loaded, else the one it would load; never raises."""
    if _loaded is not None:
        return _loaded.variant
    lib_dir = llama_lib_dir()
    if lib_dir is None:
        return "llama-cpp-python is not installed"
    try:
        return plan_cpu_backend(lib_dir, _Ggml(lib_dir)).variant  # libllama brings libggml-base, which variants need
    except ModelError as error:
        return f"error: {error.message}"
