#!/usr/bin/env bash
# System packages the tests need (Debian). Installs what is missing when run as root; otherwise
# prints the apt-get command to run. Add a package here, not in .ci/run.
set -euo pipefail
PACKAGES=(
  mariadb-server  # the MySQL engine's tests start a real MariaDB on 127.0.0.1 (devhost/mariadb.py)
  libodbc2        # unixODBC driver manager: pyodbc (the Azure SQL engine) imports it; the SQL Server driver itself is Microsoft's (see docs/engines.md)
  chromium         # the approval page is tested in a real headless browser (Selenium)
  chromium-driver
)
missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ]; then
  echo "installing system packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing system packages: ${missing[*]}; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
