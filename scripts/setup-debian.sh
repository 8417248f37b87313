#!/usr/bin/env bash
# Installs what shakedown needs on a Debian 12 host, and nothing when it is
# all there already. Run as root (or through sudo).
#   qemu-system-x86  the hypervisor
#   qemu-utils       qemu-img, for disk images
#   cpio gzip        the shell-backdoor baseline benchmark packs its initrd with them
#   e2fsprogs        mke2fs -d, for disks made from host directories
#   vde2             vde_switch, the NixOS driver's switch, benchmarked beside ours
#   openssh-client   ssh and scp through `shakedown proxy`
#   tshark           reads the network captures back in the capture test
#   mmdebstrap       builds the root file systems of full Debian machines
#   kmod             depmod, for the module indexes of full Debian machines
#   tar              unpacks their root file systems (essential, so always there)
#   ca-certificates  apt over https mirrors
#   chromium         the browser the web page's tests drive (headless)
#   python3          runs NixOS-style Python test scripts (python_test)
#   tesseract-ocr    reads machines' screens (get_screen_text, wait_for_text)
# The guest kernel and busybox are not installed on the host: shakedown
# fetches their .debs through apt into its cache. That needs apt's package
# lists, so this runs apt-get update when they are missing or stale.
set -euo pipefail
pkgs=(qemu-system-x86 qemu-utils cpio gzip e2fsprogs vde2 openssh-client tshark mmdebstrap kmod tar ca-certificates chromium python3 tesseract-ocr)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
sudo=""
[ "$(id -u)" = 0 ] || sudo="sudo"
lists=/var/lib/apt/lists
if [ ${#missing[@]} -gt 0 ] || ! ls "$lists"/*_Packages >/dev/null 2>&1 \
   || [ -n "$(find "$lists" -maxdepth 1 -name '*_Packages' -mtime +1 -print -quit)" ]; then
  $sudo apt-get update -qq
fi
if [ ${#missing[@]} -gt 0 ]; then
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
command -v go >/dev/null || { echo "setup: Go is not installed (https://go.dev/doc/install); shakedown builds its guest agent with it" >&2; exit 1; }
echo "setup: ready ($(qemu-system-x86_64 --version | head -1))"
