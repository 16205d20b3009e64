#!/usr/bin/env bash
# Starts a throwaway Dovecot on 127.0.0.1 with the dovecot-pop3ext modules
# and the shipped dovecot-pop3ext.conf, delivers sample messages over LMTP,
# shows a POP3 session with curl, and leaves the server running.
#   bash scripts/demo.sh          start (again: restart) the demo
#   bash scripts/demo.sh stop     stop it and remove its files
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" != stop ]; then
	bash scripts/setup.sh
fi
exec python3 scripts/demo.py "$@"
