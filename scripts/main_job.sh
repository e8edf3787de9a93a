#!/usr/bin/env bash
# The README's first command: from a clean clone, make a textured 3D model from the bundled
# example image and open it in Blender.
#   1. set up the environments (.venv/backend, .venv/blender: scripts/setup_env.sh)
#   2. build the Blender extension zip and install it into a throwaway Blender user folder
#   3. start a local backend from .venv/backend (the add-on's own "Start Local Backend")
#   4. generate from backend/assets/example.png with the built-in `inflate` model (no weights)
#   5. import it into a new .blend, save it, render a preview PNG with Cycles on the CPU
#   6. stop the backend; print where everything is
# Everything goes under out/main_job/. Exit status is non-zero, with the reason, on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
out="$root/out/main_job"

scripts/setup_env.sh
mkdir -p "$out"
zip=$(.venv/backend/bin/python scripts/build_addon.py --out "$out/dist" | tail -n 1)

# A Blender user folder of our own: installing the extension never touches your Blender setup.
BLENDER_USER_RESOURCES="$out/blender-user" .venv/blender/bin/python scripts/batch_generate.py \
    --images backend/assets/example.png \
    --model inflate \
    --addon-zip "$zip" \
    --start-backend .venv/backend/bin/python \
    --backend-data "$out/backend-data" \
    --results "$out/results" \
    --out "$out/example.blend" \
    --render "$out/example_preview.png"

log=$(ls "$out"/blender-user/extensions/.user/*/dreamcad/logs/backend.log 2>/dev/null | head -n 1)
echo
echo "Dream CAD main job done:"
echo "  scene    $out/example.blend"
echo "  preview  $out/example_preview.png"
echo "  asset    $(ls -t "$out"/results/*.glb | head -n 1)"
echo "  add-on   $zip   (Blender: Edit > Preferences > Get Extensions > Install from Disk)"
echo "  backend  log: ${log:-none}"
