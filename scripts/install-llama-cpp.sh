#!/usr/bin/env bash
# Install llama-cpp-python into the given Python, built for this CPU without AMX (see docs/install.md).
#
# pip's wheel cache does not key on CMAKE_ARGS, so a wheel built with other flags would be silently reused.
# We keep our own wheel cache keyed by the version and the exact flags: the first build takes ~5 minutes,
# later set-ups on the same machine reuse the wheel in seconds. A user's own CMAKE_ARGS always win.
set -euo pipefail

python=${1:?usage: install-llama-cpp.sh PYTHON}
version=${LLAMA_CPP_VERSION:-0.3.36}
default_args="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON -DGGML_AVX_VNNI=ON"
export CMAKE_ARGS="${CMAKE_ARGS:-$default_args}"

key=$(printf '%s|%s|%s' "$version" "$CMAKE_ARGS" "$("$python" -c 'import sys; print(sys.version_info[:2])')" | sha256sum | cut -c1-16)
cache="${PLLM_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pllm/wheels}/llama-cpp-python-$version-$key"

if ! ls "$cache"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "building llama-cpp-python $version (about 5 minutes on 2 cores; cached in $cache)" >&2
    mkdir -p "$cache.tmp"
    "$python" -m pip wheel --quiet --no-cache-dir --no-deps "llama-cpp-python==$version" -w "$cache.tmp"
    rm -rf "$cache" && mv "$cache.tmp" "$cache"
fi
"$python" -m pip install --quiet "$cache"/llama_cpp_python-*.whl
