#!/usr/bin/env bash
# Install instrec and what it needs on a Debian/Ubuntu machine: the sampled instruments
# (libfluidsynth + three General MIDI soundfonts) and the synthesised ones (csound with
# its STK opcodes, and csound's GM bank) from apt, and the package in ./.venv.
#   bash scripts/setup.sh             # to use instrec
#   bash scripts/setup.sh --dev       # also the test and lint tools
#   bash scripts/setup.sh --lossless  # also the lossless MuseScore General soundfont
#                                     # (478 MB installed; optional: instrec synth
#                                     # --sources musescore-lossless)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
debs=(libfluidsynth3 fluid-soundfont-gm timgm6mb-soundfont musescore-general-soundfont-small
      csound csound-plugins csound-soundfont)
for flag in "$@"; do
  case "$flag" in
    --dev) dev=1 ;;
    --lossless) debs+=(musescore-general-soundfont-lossless) ;;
    *) echo "setup.sh: unknown option $flag (known: --dev, --lossless)" >&2; exit 2 ;;
  esac
done
missing=()
for deb in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$deb" 2>/dev/null | grep -q "ok installed" || missing+=("$deb")
done
if ((${#missing[@]})); then
  sudo=""
  [[ $(id -u) == 0 ]] || sudo="sudo"
  echo "installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[[ -x .venv/bin/python ]] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# the CPU build of PyTorch first, so that nothing below pulls a multi-GB CUDA build
.venv/bin/python -m pip install -q "torch==2.13.0"
extras="full"
((dev)) && extras="full,dev"
.venv/bin/python -m pip install -q -e ".[${extras}]"
echo "instrec installed in $(pwd)/.venv (run .venv/bin/instrec --help)"
