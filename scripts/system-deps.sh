#!/usr/bin/env bash
# Debian packages the workbook uses: Fashion-MNIST (offline data) and Chromium (PDF reports,
# screenshots). Installs them when run as root with apt; otherwise says what to run.
set -euo pipefail
packages=(dataset-fashion-mnist chromium)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present: ${packages[*]}"
elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
    echo "installing ${missing[*]} with apt-get"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
else
    echo "missing system packages: ${missing[*]}"
    echo "  install them with: sudo apt-get install ${missing[*]}"
    echo "  (without dataset-fashion-mnist set data.root or data.download in params/; without chromium no PDFs)"
fi
