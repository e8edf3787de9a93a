#!/usr/bin/env bash
# Create (or update) the three environments Dream CAD runs in, from nothing but Python 3.11,
# pip and npm:
#   .venv/backend  the backend's own environment (torch, geometry libraries, pytest, ruff)
#   .venv/blender  Blender as a Python module (bpy 5.0.1): stands in for Blender's own Python
#   .venv/node     the Khronos glTF validator, which checks every GLB we write
# Each environment is rebuilt only when the file that defines it changes, so reruns are quick.
# DREAMCAD_TORCH_SPEC picks the torch build (default torch==2.13.0; on a CUDA machine pass the
# spec or index your CUDA version needs). Set DREAMCAD_SKIP_BLENDER=1 for a backend-only box.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-$(command -v python3.11 || command -v python3)}
torch_spec=${DREAMCAD_TORCH_SPEC:-torch==2.13.0}
mkdir -p .venv

stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }

backend_stamp=$(stamp pyproject.toml scripts/setup_env.sh)
if [ "$(cat .venv/backend/.stamp 2>/dev/null)" != "$backend_stamp" ]; then
    echo "setup: backend environment (.venv/backend)"
    [ -x .venv/backend/bin/python ] || "$python" -m venv .venv/backend
    .venv/backend/bin/python -m pip install -q --upgrade pip
    if ! .venv/backend/bin/python -c "import torch" 2>/dev/null; then
        .venv/backend/bin/python -m pip install -q "$torch_spec"
    fi
    # cluster: Ray, for `serve --ray` and its tests (a few are run in CI on a local cluster)
    .venv/backend/bin/python -m pip install -q -e ".[models,dev,cluster]"
    echo "$backend_stamp" > .venv/backend/.stamp
fi

if [ "${DREAMCAD_SKIP_BLENDER:-0}" != 1 ]; then
    blender_stamp=$(stamp scripts/setup_env.sh)
    if [ "$(cat .venv/blender/.stamp 2>/dev/null)" != "$blender_stamp" ]; then
        echo "setup: Blender environment (.venv/blender, bpy 5.0.1: about 1 GB)"
        [ -x .venv/blender/bin/python ] || "$python" -m venv .venv/blender
        .venv/blender/bin/python -m pip install -q --upgrade pip
        .venv/blender/bin/python -m pip install -q "bpy==5.0.1" "pyzmq>=26" "pytest>=8"
        echo "$blender_stamp" > .venv/blender/.stamp
    fi
fi

validator_version=2.0.0-dev.3.10
if [ ! -f .venv/node/node_modules/gltf-validator/package.json ]; then
    echo "setup: glTF validator (.venv/node)"
    npm install -s --no-audit --no-fund --prefix .venv/node "gltf-validator@$validator_version"
fi
# numba compiles the geometry kernels on first use (~45 s here) and caches them on disk: pay it
# now, not in the first job. A no-op (~2 s) once cached. With a CUDA GPU, the compiled torch
# stages too (~2 min the first time; inductor's disk cache then makes serve's start-up ~20 s).
warm_devices=$(.venv/backend/bin/python -c "import torch; print('--device cuda' if torch.cuda.is_available() else '')" 2>/dev/null || true)
# shellcheck disable=SC2086  # warm_devices is empty or two words
.venv/backend/bin/dreamcad-backend --log-level WARNING warmup $warm_devices | tail -n 1
echo "setup: done ($root/.venv)"
