#!/bin/sh
# Generates ./configure. Dovecot's dovecot.m4 comes from dovecot-dev
# (/usr/share/aclocal), so nothing of Dovecot's is copied into this tree.
set -e
cd "$(dirname "$0")"
mkdir -p m4 build-aux
autoreconf -fi
