#!/usr/bin/env bash
# kmod_exchange.sh - raw frames user-to-user across the link (both ends attached),
# endpoint isolation, and the kernel's own traffic still flowing beside it.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$kmod_check"
need_classifier
rc=0
"$kmod_check" exchange || rc=1
"$kmod_check" isolation || rc=1
"$kmod_check" kernel-peer || rc=1
exit $rc
