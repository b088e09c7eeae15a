#!/usr/bin/env bash
# The one list of what the tests (and the demo's optional SSH target) need from Debian, and its
# installer. Every package the tests drive as a real peer (none of them written here) is in the table
# below, with what proves it present; the tests' preflight (scripts/preflight.mjs, the first step of
# npm test) reads this same table, checks each line and names what is missing with this command, and
# `preflight.mjs --prove` (run by .ci/run) checks that what the tests use comes from these packages or
# what they depend on, so a package installed by hand cannot hide a gap.
# Run as root (CI is root); elsewhere it uses sudo.
set -euo pipefail
deps=$(cat <<'DEBIAN_PACKAGES'
# package                 checks: bin NAME… (a program: a name on PATH or an absolute path),
#                                 py MODULE… (importable by /usr/bin/python3), pc NAME (pkg-config knows it),
#                                 file PATH… (a file that is there: a plug-in no program names on PATH)
mbpoll                    bin mbpoll
python3-pymodbus          py pymodbus.server
# pymodbus only recommends these, and imports serial even for TCP (No module named 'serial')
python3-serial            py serial
python3-serial-asyncio    py serial_asyncio
libmodbus-dev             pc libmodbus
gcc                       bin gcc cc
pkg-config                bin pkg-config
socat                     bin socat
openssh-server            bin /usr/sbin/sshd
openssh-client            bin ssh sftp scp ssh-keygen
openssl                   bin openssl
curl                      bin curl
# ss: the SSH abuse tests count established connections
iproute2                  bin ss
systemd                   bin systemd-analyze systemd-sysusers systemd-tmpfiles systemctl
# the pager the SSH pty tests drive on their sshd target
less                      bin less
procps                    bin pgrep pkill ps
passwd                    bin useradd usermod userdel
util-linux                bin setpriv
mount                     bin mount umount
# the real terminal `penstockctl watch` is tested in
tmux                      bin tmux
# the evidence bus the gateways push to and the collector reads (issue 16)
nats-server               bin nats-server
# the collector's database (bookworm's PostgreSQL 15; the tests run it as the package's postgres user)
postgresql-15             bin /usr/lib/postgresql/15/bin/postgres /usr/lib/postgresql/15/bin/initdb
# the SIEM the syslog export is tested against: rsyslog with its TLS driver for imtcp
rsyslog                   bin rsyslogd
rsyslog-gnutls            file /usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so
DEBIAN_PACKAGES
)
mapfile -t packages < <(sed -e 's/#.*//' <<<"$deps" | awk 'NF { print $1 }')
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
# --no-install-recommends: a fresh machine gets exactly what the table names (and its Depends), which
# is what `preflight.mjs --prove` checks the tests use.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
