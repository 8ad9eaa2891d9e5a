#!/usr/bin/env bash
# foundation_abi: utcp.ko registers /dev/utcp, answers the versioned ABI query, and goes
# away cleanly on unload (the runner then checks the kernel log for warnings and taint).
set -u
ctl=$UTCP_BUILD/tools/utcpctl
check() { if eval "$2"; then echo "PASS: $1"; else echo "FAIL: $1"; fi; }

check device-is-char-misc '[ -c /dev/utcp ] && grep -qw utcp /proc/misc'
out=$("$ctl" abi 2>&1)
want=$(sed -n 's/^#define UTCP_ABI_VERSION \([0-9]*\).*/\1/p' "$UTCP_SRC/include/uapi/linux/utcp.h")
check abi-version-matches-header '[ "$(echo "$out" | sed -n "s/^abi_version //p")" = "$want" ]'
check module-listed 'grep -q "^utcp " /proc/modules'
rmmod utcp
check device-gone-after-unload '[ ! -e /dev/utcp ] && ! grep -qw utcp /proc/misc'
out=$("$ctl" abi 2>&1)
check clear-message-without-module 'echo "$out" | grep -q "module is not loaded"'
insmod "$UTCP_VM_KO"
check reload '[ -c /dev/utcp ] && "$ctl" abi >/dev/null'
