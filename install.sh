#!/usr/bin/env bash
# SalesBoost Appliance installer. Idempotent: a second run on an installed tree skips the
# package installs (a stamp records what was installed) and only re-checks models, database,
# secrets and the admin account.
#
#   ./install.sh                 CPU install: venv, packages, bundled models, database, admin
#   ./install.sh --dev           ... plus test extras and (as root) the Debian packages tests use
#   ./install.sh --gpu           CUDA build of llama-cpp-python and onnxruntime-gpu
#   ./install.sh --wheelhouse D  write every wheel needed (llama-cpp-python's built one too) to D
#   ./install.sh --offline D     install from such a D with no package index (air-gapped sites)
#   ./install.sh --systemd       (root) system user, state dir, unit, encrypted credentials, start
#
# Exit codes: 0 done; 1 a step failed (its message says which); 2 bad usage.
set -euo pipefail

cd "$(dirname "$0")"
ROOT=$(pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)
TORCH_CPU="torch==2.13.0"      # the CPU build; a bare `torch` may pull a multi-GB CUDA build
LLAMA="llama-cpp-python==0.3.36"

DEV=0 GPU=0 SYSTEMD=0 WHEELHOUSE="" OFFLINE=""
usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --dev) DEV=1 ;;
    --gpu) GPU=1 ;;
    --systemd) SYSTEMD=1 ;;
    --wheelhouse) WHEELHOUSE=${2:?--wheelhouse needs a directory}; shift ;;
    --offline) OFFLINE=${2:?--offline needs a directory}; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
  esac
  shift
done

if [ -t 1 ]; then
  say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
else
  say() { printf '==> %s\n' "$*"; }
fi
die() { printf 'install.sh: %s\n' "$*" >&2; exit 1; }
is_root() { [ "$(id -u)" = 0 ]; }

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# --- system packages ---------------------------------------------------------------------
apt_install() {
  if ! is_root; then
    echo "install.sh: not root, skipping Debian packages: $* (install them yourself for the full test suite)"
    return 0
  fi
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "apt-get install ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

command -v python3 >/dev/null || die "python3 (3.11 or newer) is required"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python 3.11 or newer is required (found $(python3 -V))"

if [ ! -x "$PY" ]; then
  say "creating $VENV"
  if ! python3 -m venv "$VENV" 2>/dev/null; then
    rm -rf "$VENV"
    apt_install python3-venv
    python3 -m venv "$VENV" || die "python3 -m venv failed: install the python3-venv package"
  fi
fi

# --- Python packages -----------------------------------------------------------------------
MODE="cpu"; [ $GPU = 1 ] && MODE="gpu"
EXTRAS=""; [ $DEV = 1 ] && EXTRAS="[dev]"
STAMP_WANT="$(sha256sum pyproject.toml | cut -c1-16) $MODE dev=$DEV"
STAMP="$VENV/.salesboost-install"

pip_install() {
  if [ -n "$OFFLINE" ]; then
    "${PIP[@]}" install --no-index --find-links "$OFFLINE" "$@"
  else
    "${PIP[@]}" install "$@"
  fi
}

if [ -n "$WHEELHOUSE" ]; then
  mkdir -p "$WHEELHOUSE"
  say "writing every wheel needed to $WHEELHOUSE (llama-cpp-python is built once and cached by pip)"
  ORT=onnxruntime; [ $GPU = 1 ] && ORT=onnxruntime-gpu
  "${PIP[@]}" wheel --wheel-dir "$WHEELHOUSE" "$TORCH_CPU" "$ORT" "pip" "setuptools>=68" "wheel" ".[dev]"
  echo "wheelhouse ready: copy $WHEELHOUSE with this tree and run ./install.sh --offline $WHEELHOUSE"
fi

if [ "$(cat "$STAMP" 2>/dev/null)" != "$STAMP_WANT" ]; then
  [ -n "$OFFLINE" ] || "${PIP[@]}" install -q --upgrade pip
  say "installing $TORCH_CPU (CPU build)"
  pip_install -q "$TORCH_CPU"
  if [ $GPU = 1 ]; then
    say "building $LLAMA with CUDA (CMAKE_ARGS=-DGGML_CUDA=on); this takes a while"
    "$PY" -m pip uninstall -y -q onnxruntime llama-cpp-python >/dev/null 2>&1 || true
    CMAKE_ARGS="-DGGML_CUDA=on" FORCE_CMAKE=1 pip_install --no-cache-dir "$LLAMA"
    pip_install -q onnxruntime-gpu
  else
    if "$PY" -c 'import onnxruntime.capi._pybind_state as s; exit(0 if "CUDAExecutionProvider" in s.get_available_providers() else 1)' 2>/dev/null; then
      "$PY" -m pip uninstall -y -q onnxruntime-gpu   # never both in one venv
    fi
    say "installing $LLAMA for the CPU (the first build compiles llama.cpp: ~12 min on 2 cores; pip caches it)"
    pip_install -q "$LLAMA"
    pip_install -q onnxruntime
  fi
  say "installing the appliance$EXTRAS"
  pip_install -q -e ".$EXTRAS"
  echo "$STAMP_WANT" > "$STAMP"
else
  say "Python packages already installed ($STAMP_WANT)"
fi

if [ $DEV = 1 ]; then
  # systemd-analyze (unit verification test); fonts-noto-cjk renders the Chinese OCR test and
  # bench pages (tests only: the appliance itself never needs or fetches a font)
  apt_install systemd shellcheck fonts-noto-cjk
  # Debian's Chromium for the browser tests (tests/e2e drive /usr/bin/chromium through
  # Playwright; `playwright install` is never run: it would download a browser)
  apt_install chromium
fi

# --- models, database, secrets, admin -------------------------------------------------------
SB="$VENV/bin/salesboost"
say "placing bundled models under models/ and checking sha256"
"$SB" models place
say "training the intent classifier (models/intent)"
"$SB" intent train --if-needed
if [ $SYSTEMD = 1 ]; then
  # the service keeps its state in /var/lib/salesboost and its secrets as encrypted
  # credentials: migrate, enrol and bootstrap there, not in ./state
  is_root || die "--systemd needs root"
  say "installing the systemd service"
  "$ROOT/systemd/install-systemd.sh" "$ROOT"
  exit 0
fi
say "migrating the database"
"$SB" migrate
say "secrets"
"$SB" secrets ensure
say "admin account"
"$SB" users bootstrap-admin

say "done. Start it with: $SB serve   (then open http://<this-host>:8000/)"
