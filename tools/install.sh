#!/usr/bin/env bash
# Installs visionkit and everything it needs on a fresh Linux machine (idempotent).
#   bash tools/install.sh          # package + test tools (editable install of this checkout)
# open3d needs the system library libusb-1.0 on Debian/Ubuntu; it is installed when missing (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

if [ "$(uname -s)" = "Linux" ] && ! ldconfig -p 2>/dev/null | grep -q "libusb-1.0.so.0"; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libusb-1.0-0 >/dev/null
  else
    echo "install.sh: open3d needs libusb-1.0 (Debian/Ubuntu: sudo apt-get install libusb-1.0-0)" >&2
  fi
fi

# torch/torchvision are pinned in pyproject.toml (torch==2.14.1, torchvision==0.29.1).
python -m pip install --quiet -e ".[dev]"
python -c "import visionkit.cli, open3d" >/dev/null
echo "visionkit installed: $(python -c 'import visionkit; print(visionkit.__version__)')"
