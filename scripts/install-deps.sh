#!/usr/bin/env bash
# Installs the Debian packages lowbit builds against. Idempotent: only missing packages are installed.
# The CUDA toolkit is optional and never installed here; the build uses it when nvcc is on PATH.
set -euo pipefail

PACKAGES=(
  build-essential cmake make pkg-config git python3
  nlohmann-json3-dev libcli11-dev libfmt-dev libyaml-cpp-dev libpcre2-dev libutf8proc-dev
  libhwy-dev libopenblas-dev liblapacke-dev libgtest-dev libgmock-dev libbenchmark-dev libcpp-httplib-dev
  clang-format
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
