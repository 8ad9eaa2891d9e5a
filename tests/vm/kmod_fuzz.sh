#!/usr/bin/env bash
# kmod_fuzz.sh - bounded random ioctls and ring indices (UTCP_FUZZ_SECONDS, default 20):
# no oops or warning (the runner checks the kernel log), no leak, still working after.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$kmod_check"
need_classifier
exec "$kmod_check" fuzz "${UTCP_FUZZ_SECONDS:-20}"
