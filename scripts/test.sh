#!/usr/bin/env bash
# Runs every test of dovecot-pop3ext (`make check-all`): installs what is
# missing, builds, then runs the C unit tests, the fuzz targets (a short
# fixed number of runs each, when clang is there) and the integration tests
# against real Dovecot, slapd and PostgreSQL instances on 127.0.0.1.
# The last line is the count: "N passed, N failed".
#
#   bash scripts/test.sh [--sanitizers] [run.py arguments, e.g. -k capa]
#
# --sanitizers: the same tests against a second build in ./build-asan,
# configured with --enable-sanitizers (every module built with ASan and
# UBSan; Dovecot's processes run with the runtimes preloaded); every
# sanitizer report fails the test that caused it. ./build stays as it is.
set -uo pipefail
cd "$(dirname "$0")/.."

builddir=build
if [ "${1:-}" = "--sanitizers" ]; then
	builddir=build-asan
	shift
fi

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

if [ "$builddir" = build-asan ]; then
	echo "== building with sanitizers in $builddir"
	mkdir -p "$builddir"
	if [ ! -f "$builddir/config.status" ] || \
	   [ configure -nt "$builddir/config.status" ]; then
		(cd "$builddir" && ../configure --enable-silent-rules \
			--enable-sanitizers) ||
			{ echo "configure --enable-sanitizers failed"; echo "0 passed, 1 failed"; exit 1; }
	fi
	make -C "$builddir" -j"$(nproc)" --no-print-directory ||
		{ echo "the sanitizer build failed"; echo "0 passed, 1 failed"; exit 1; }
fi

# quoted for make's shell; no arguments must give no TESTFLAGS at all
# (printf with none still prints its format once: '')
flags=
if [ $# -gt 0 ]; then
	flags=$(printf "%q " "$@")
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
make -C "$builddir" -j"$(nproc)" --no-print-directory check-all \
	TESTFLAGS="$flags" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
# make prints its own lines after the runner's count; repeat the count last
count=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$log" | tail -1)
if [ -z "$count" ]; then
	echo "the build or the test runner failed before counting"
	count="0 passed, 1 failed"
	rc=1
fi
echo "$count"
exit "$rc"
