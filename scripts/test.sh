#!/usr/bin/env bash
# Runs every test of dovecot-pop3ext (what `make check` runs): installs what
# is missing, builds, then runs the C unit tests and the integration tests
# against real Dovecot, slapd and PostgreSQL instances on 127.0.0.1.
# The last line is the count: "N passed, N failed".
# Extra arguments go to tests/run.py (e.g. -k capa, --jobs 1).
set -uo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh || { echo "setup failed"; echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT
make -C build -j"$(nproc)" --no-print-directory check TESTFLAGS="$*" 2>&1 | tee "$log"
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
