#!/usr/bin/env bash
# Debian packages the tests drive as real peers (none of them written here):
#   mbpoll, python3-pymodbus, libmodbus-dev  Modbus clients, PLC simulators, the bench's C PLC
#   socat                                   pty pairs standing in for an RS-485 line
#   openssh-server, openssh-client          a real sshd target and the real ssh/sftp/scp clients
#   openssl, iproute2 (ss), systemd         test certificates, admin peer credentials, systemd-analyze
# Run as root (CI is root); elsewhere it uses sudo.
set -euo pipefail
packages=(mbpoll python3-pymodbus libmodbus-dev socat openssh-server openssh-client openssl iproute2 systemd)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all Debian packages present"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
