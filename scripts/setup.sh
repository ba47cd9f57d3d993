#!/usr/bin/env bash
# Set up latentguard on a fresh machine: system data packages, a virtual environment in .venv,
# torch (the local CPU wheel 2.13.0 where present), and the package with its test, web and scale extras.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# pip here may warn about index locations the machine's config names; keep the log readable.
quiet_pip() { "$@" 2> >(grep -v "WARNING: Location" >&2); }

# apt-get with a bounded wait for the dpkg/apt lock (another apt, or unattended-upgrades, may hold it):
# retried every SETUP_APT_RETRY_EVERY s (default 5) for up to SETUP_APT_LOCK_WAIT s (default 300); any other
# apt failure is not retried. The log of the last attempt is in $APT_LOG.
APT_LOG=$(mktemp)
trap 'rm -f "$APT_LOG"' EXIT
apt_retry() {
  local deadline=$(( $(date +%s) + ${SETUP_APT_LOCK_WAIT:-300} ))
  while true; do
    if DEBIAN_FRONTEND=noninteractive "$@" >"$APT_LOG" 2>&1; then return 0; fi
    if ! grep -qiE "could not get lock|unable to acquire|is another process using it|lock-frontend|dpkg was interrupted" "$APT_LOG"; then
      return 1
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "setup: apt's lock is still held after ${SETUP_APT_LOCK_WAIT:-300} s: $(grep -iE 'lock' "$APT_LOG" | head -1 || true)" >&2
      return 1
    fi
    echo "setup: waiting for apt's lock (another apt/dpkg is running) ..." >&2
    sleep "${SETUP_APT_RETRY_EVERY:-5}"
  done
}
apt_install() { apt_retry apt-get update -qq && apt_retry apt-get install -y -qq --no-install-recommends "$@"; }

# Real training/evaluation data from Debian (Fashion-MNIST, the nature photos, gcompris-qt-data's photographs): needed by the privacy
# audit of zoo:t2i-members, the poisoning experiments and to rebuild the zoo. Not needed to load the zoo.
# Setup fails (non-zero, saying what to run) when they cannot be installed; SETUP_SKIP_DATA=1 sets up without them.
# SETUP_DATA_ROOT (default /usr/share) is where the packages put their files.
DATA_PKGS="dataset-fashion-mnist mate-backgrounds lomiri-wallpapers-16.04 lomiri-wallpapers-20.04 gcompris-qt-data"
DATA_ROOT=${SETUP_DATA_ROOT:-/usr/share}
data_present() {
  [ -d "$DATA_ROOT/datasets/fashion-mnist" ] && [ -d "$DATA_ROOT/backgrounds/mate/nature" ] \
    && [ -f "$DATA_ROOT/backgrounds/umang_by_Abhishek_Mudgal.jpg" ] && [ -f "$DATA_ROOT/backgrounds/Kleiber_by_Lukas_Baubkus.jpg" ] \
    && [ -f "$DATA_ROOT/gcompris-qt/rcc/explore_monuments.rcc" ]
}
if ! data_present && [ "${SETUP_SKIP_DATA:-0}" != 1 ]; then
  why=""
  if ! command -v apt-get >/dev/null 2>&1; then
    why="this machine has no apt-get"
  elif [ "$(id -u)" != 0 ]; then
    why="installing them needs root"
  elif ! apt_install $DATA_PKGS; then
    why="apt-get failed: $(grep -E '^(E|W):' "$APT_LOG" | head -1 || true)"
  elif ! data_present; then
    why="apt-get succeeded but their files are not under $DATA_ROOT"
  fi
  if [ -n "$why" ]; then
    echo "setup: error: the data packages ($DATA_PKGS) are missing: $why." >&2
    echo "setup: run 'sudo apt-get install $DATA_PKGS' and then this script again, or SETUP_SKIP_DATA=1 bash scripts/setup.sh to set up without them (the audits and zoo recipes that read them will then fail)" >&2
    exit 1
  fi
elif ! data_present; then
  echo "setup: note: SETUP_SKIP_DATA=1: set up without $DATA_PKGS; the audits and zoo recipes that read them will fail" >&2
fi

# The browser test of `latentguard serve` drives Debian's chromium through Debian's chromedriver (Selenium);
# nothing downloads a browser at run time. Without them that one test is skipped, saying why.
if command -v apt-get >/dev/null 2>&1 && { ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; }; then
  if [ "$(id -u)" = 0 ]; then
    apt_install chromium chromium-driver \
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
# scale: Ray (local Ray instance in the tests) and pyarrow; the local engine needs neither.
quiet_pip .venv/bin/python -m pip install -q -e ".[test,web,scale]"
.venv/bin/python -c "import latentguard, torch, diffusers; print('latentguard', latentguard.__version__, '| torch', torch.__version__, '| diffusers', diffusers.__version__)"
