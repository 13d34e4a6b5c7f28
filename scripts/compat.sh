#!/usr/bin/env bash
# Compatibility check on the oldest and the newest supported stacks, each in its own venv:
#
#   oldest: Python 3.10, numba 0.59, numpy 1.26 (the floors in pyproject.toml)
#   newest: Python 3.13, the newest numba and numpy pyproject.toml allows
#
# Each venv gets a regular wheel of this tree, runs scripts/smoke.py from outside the source
# tree, then the core tests: tests/layers, tests/kernels, tests/runtime and the ONNX export
# tests, with pytest, hypothesis and onnxruntime only (no torch, Keras, h5py or safetensors).
#
#   scripts/compat.sh [oldest|newest ...]      # default: both
#
# Interpreters come from ~/.pyenv/versions/ (override with PY310=/path/python, PY313=...).
# Venvs live in .compat/ (COMPAT_DIR to move them); each stack uses its own Numba cache.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
COMPAT_DIR=${COMPAT_DIR:-$ROOT/.compat}
PY310=${PY310:-$(ls -d "$HOME"/.pyenv/versions/3.10.*/bin/python 2>/dev/null | sort -V | tail -1)}
PY313=${PY313:-$(ls -d "$HOME"/.pyenv/versions/3.13.*/bin/python 2>/dev/null | sort -V | tail -1)}
CORE_TESTS=(tests/layers tests/kernels tests/runtime tests/converters/onnx/test_onnx_export.py)
# onnxruntime 1.23.2, the newest for Python 3.10, aborts the process (a std::vector bound
# assertion inside its bidirectional RNN) on several of these random exported networks; newer
# onnxruntime runs them and agrees. The peer's bug, so the oldest stack skips that test.
OLDEST_DESELECT=(--deselect "tests/converters/onnx/test_onnx_export.py::test_round_trip_and_onnxruntime_whole_sequence")

mkdir -p "$COMPAT_DIR"
rm -rf "$COMPAT_DIR/dist"
python3 -m pip wheel --quiet --no-deps --wheel-dir "$COMPAT_DIR/dist" "$ROOT"
WHEEL=$(ls "$COMPAT_DIR"/dist/streamlstm-*.whl)

run_stack() {  # name python "pytest options" pins...
    local name=$1 python=$2
    local -a extra
    read -r -a extra <<<"$3"
    shift 3
    if [ -z "$python" ] || [ ! -x "$python" ]; then
        echo "compat $name: no interpreter found (set PY310/PY313)" >&2
        return 1
    fi
    local venv=$COMPAT_DIR/$name
    echo "== compat $name: $("$python" --version) $*"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/pip" install --quiet "$@" "$WHEEL" pytest hypothesis onnxruntime
    "$venv/bin/python" -c 'import sys, numba, numpy, onnx; print("   ", sys.version.split()[0], "numba", numba.__version__, "numpy", numpy.__version__, "onnx", onnx.__version__)'
    (cd "$(mktemp -d)" && PATH="$venv/bin:$PATH" "$venv/bin/python" "$ROOT/scripts/smoke.py")
    # the installed wheel, not the source tree: pytest's script does not put the cwd on sys.path
    NUMBA_CACHE_DIR="$venv/numba-cache" "$venv/bin/pytest" -q -p no:cacheprovider "${extra[@]}" "${CORE_TESTS[@]}"
}

stacks=("$@")
[ ${#stacks[@]} -eq 0 ] && stacks=(oldest newest)
for stack in "${stacks[@]}"; do
    case $stack in
        oldest) run_stack oldest "$PY310" "${OLDEST_DESELECT[*]}" "numba==0.59.*" "numpy==1.26.*" ;;
        newest) run_stack newest "$PY313" "" "numba" "numpy" ;;
        *) echo "compat: unknown stack $stack (oldest, newest)" >&2; exit 2 ;;
    esac
done
echo "compat: ${stacks[*]} passed"
