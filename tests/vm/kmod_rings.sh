#!/usr/bin/env bash
# kmod_rings.sh - ring memory exists only where it is used: a default-size endpoint
# that carried one small frame each way holds a few pages, frames across page
# boundaries of the slot area (TX, RX, RX checksum completion) arrive intact, and
# every page is freed with the endpoint.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$kmod_check"
need_classifier
"$kmod_check" rings
