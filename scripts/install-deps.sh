#!/usr/bin/env bash
# Installs the Debian packages the tests (and the demo's optional SSH target) drive as real peers,
# none of them written here. The list is scripts/test-deps.txt: the same list the tests' preflight
# checks (scripts/preflight.mjs), so what one installs is what the other needs.
# Run as root (CI is root); elsewhere it uses sudo.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t packages < <(sed -e 's/#.*//' "$here/test-deps.txt" | awk 'NF { print $1 }')
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} Debian packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
# --no-install-recommends: a fresh machine gets exactly what test-deps.txt names (and its Depends),
# which is what `preflight.mjs --prove` checks the tests use.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
