#!/usr/bin/env bash
# Installs every build and test dependency of Kiln from Debian 12's
# packages.  The only set-up step; nothing is downloaded at build or test
# time.  Run as root (or with sudo available).
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libmicrohttpd-dev libjansson-dev libsqlite3-dev libcurl4-openssl-dev
  uuid-dev libjwt-dev libssl-dev
  libcmocka-dev
  python3 python3-yaml python3-jsonschema
  curl sqlite3
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages already installed"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
