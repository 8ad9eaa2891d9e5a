#!/usr/bin/env bash
# kmod_template.sh - each spoofed header field is refused and never reaches the peer's wire.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$kmod_check"
exec "$kmod_check" template
