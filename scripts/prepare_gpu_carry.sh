#!/usr/bin/env bash
# Prepare what scripts/zoo_gpu.sh needs on a lent GPU machine (which has torch but no diffusers, no internet):
#   .whl/      diffusers + importlib_metadata wheels for the GPU image's Python 3.12
#   .zoodata/  the nature photos, Fashion-MNIST and the MiniLM text cache (the MiniLM weights stay here)
# Both folders are git-ignored locally (.git/info/exclude) and carried with the device tool's `carry`.
# Then: device run `ONLY_CHAIN=1 bash scripts/zoo_gpu.sh` (vae-a, t2i, t2i-members) or without ONLY_CHAIN (all).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || printf "/.whl/\n/.zoodata/\n" >> .git/info/exclude
PY=.venv/bin/python; [ -x "$PY" ] || PY=python3
mkdir -p .whl .zoodata/nature .zoodata/fashion
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d .whl "diffusers==$("$PY" -c 'import diffusers; print(diffusers.__version__)')" importlib_metadata
cp /usr/share/backgrounds/mate/nature/*.jpg .zoodata/nature/
cp /usr/share/datasets/fashion-mnist/*.gz .zoodata/fashion/
PYTHONPATH=src "$PY" -c "from pathlib import Path; from latentguard.zoo.train.recipes import build_text_cache; build_text_cache(Path('.zoodata/text_cache.pt'))"
du -sh .whl .zoodata
