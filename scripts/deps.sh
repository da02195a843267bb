#!/bin/sh
# Install what smimegate builds and tests with, from Debian 12's packages.
# Idempotent: packages already present are left alone, nothing else changes.
set -eu

build="make gcc pkg-config libssl-dev libgmime-3.0-dev libglib2.0-dev libsqlite3-dev libevent-dev libcrypt-dev libldap-dev"
test="openssl python3 python3-pytest python3-aiosmtpd swaks libnet-ssleay-perl libnss3-tools gpgsm gnupg clang-format time postfix slapd ldap-utils dnsmasq-base msmtp"
want="$build $test"

missing=""
for p in $want; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && { echo "deps: all present"; exit 0; }

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
echo "deps: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
