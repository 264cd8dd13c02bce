#!/usr/bin/env bash
# Installs the system packages the build and tests need, if they are missing: cmake (Pingora builds
# zlib-ng with it), a C compiler, and curl (the TLS tests use it as a second, independent client).
# Idempotent; uses apt-get (Debian), as root or through sudo.
set -euo pipefail
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v cc >/dev/null 2>&1 || need+=(gcc)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
fi
