#!/usr/bin/env bash
# Installs what dovecot-pop3ext needs to build and to test on Debian 12, then
# builds it in ./build. Safe to run again: it installs only what is missing
# and rebuilds only what changed. Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" != 0 ]; then
	echo "scripts/setup.sh: run as root (it installs Debian packages)" >&2
	exit 1
fi

PACKAGES=(
	# build
	build-essential autoconf automake libtool pkg-config
	dovecot-dev libpam0g-dev libldap2-dev libsqlite3-dev libpq-dev libssl-dev
	# the Dovecot the modules load into
	dovecot-core dovecot-pop3d dovecot-imapd dovecot-lmtpd
	# tests: real servers and clients nobody here wrote
	python3 valgrind openssl curl fetchmail mpop procps iproute2 faketime
	slapd ldap-utils libpam-wrapper postgresql-15 sqlite3
	# benchmarks: Dovecot's own ldap passdb, measured against pop3ext's
	dovecot-ldap
	# the quality gate: gcc's ASan/UBSan runtimes (--enable-sanitizers),
	# clang with libFuzzer for fuzz/, llvm-symbolizer for their stacks
	libasan8 libubsan1 clang libclang-rt-14-dev llvm
)

missing=()
for p in "${PACKAGES[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" \
		|| missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "== installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	# Don't let the packages start system daemons (dovecot, slapd,
	# postgresql): the tests and the demo start their own, on loopback.
	made_policy=
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod +x /usr/sbin/policy-rc.d
		made_policy=1
	fi
	trap '[ -n "$made_policy" ] && rm -f /usr/sbin/policy-rc.d' EXIT
	apt-get -o DPkg::Lock::Timeout=300 update -q
	apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
		"${missing[@]}"
fi

echo "== building"
if [ ! -x configure ] || [ configure.ac -nt configure ] || \
   [ -n "$(find . -name Makefile.am -newer configure -not -path './build/*' | head -1)" ]; then
	./autogen.sh
fi
mkdir -p build
if [ ! -f build/config.status ] || [ configure -nt build/config.status ]; then
	(cd build && ../configure --enable-silent-rules)
fi
make -C build -j"$(nproc)" --no-print-directory
