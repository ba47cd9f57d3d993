#!/usr/bin/env bash
# Set up latentguard on a fresh machine: system data packages, a virtual environment in .venv,
# torch (the local CPU wheel 2.13.0 where present), and the package with its test and web extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# pip here may warn about index locations the machine's config names; keep the log readable.
quiet_pip() { "$@" 2> >(grep -v "WARNING: Location" >&2); }

# Real training/evaluation data from Debian (Fashion-MNIST, the nature photos): needed by the privacy
# audit of zoo:t2i-members, the poisoning experiments and to rebuild the zoo. Not needed to load the zoo.
if command -v apt-get >/dev/null 2>&1 && [ ! -d /usr/share/datasets/fashion-mnist -o ! -d /usr/share/backgrounds/mate/nature -o ! -f /usr/share/backgrounds/umang_by_Abhishek_Mudgal.jpg -o ! -f /usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg ]; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        dataset-fashion-mnist mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 >/dev/null) \
      || echo "setup: warning: could not install dataset-fashion-mnist/mate-backgrounds/lomiri-wallpapers-16.04/-20.04; audits needing them will say so" >&2
  else
    echo "setup: note: run 'sudo apt-get install dataset-fashion-mnist mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04' for the data-dependent audits" >&2
  fi
fi

# The browser test of `latentguard serve` drives Debian's chromium through Debian's chromedriver (Selenium);
# nothing downloads a browser at run time. Without them that one test is skipped, saying why.
if command -v apt-get >/dev/null 2>&1 && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        chromium chromium-driver >/dev/null) \
      || echo "setup: warning: could not install chromium/chromium-driver; the serve browser test will be skipped" >&2
  else
    echo "setup: note: run 'sudo apt-get install chromium chromium-driver' for the serve browser test" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# torch first and pinned: an unpinned torch pulls a multi-GB CUDA build. GPU users: install your own
# CUDA torch (>=2.2) before running this script; the pin below is skipped when torch is already there.
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  quiet_pip .venv/bin/python -m pip install -q "torch==${TORCH_VERSION:-2.13.0}"
fi
quiet_pip .venv/bin/python -m pip install -q -e ".[test,web]"
.venv/bin/python -c "import latentguard, torch, diffusers; print('latentguard', latentguard.__version__, '| torch', torch.__version__, '| diffusers', diffusers.__version__)"
