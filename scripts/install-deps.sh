#!/bin/sh
# Installs the Debian packages lora needs to build, test and run on the CPU
# through Mesa's lavapipe: a C compiler for cgo, the Vulkan loader, Mesa's
# Vulkan drivers, glslc (to check committed SPIR-V), git, and python3-numpy
# (the independent reference that checks our PEFT and GGUF adapters).
# Idempotent: does nothing when everything is present.
set -eu
pkgs="make gcc libc6-dev libvulkan1 mesa-vulkan-drivers glslc git ca-certificates python3 python3-numpy"
missing=""
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing:$missing" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
