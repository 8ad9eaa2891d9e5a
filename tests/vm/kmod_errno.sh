#!/usr/bin/env bash
# kmod_errno.sh - every ioctl's errno on bad input, and an unprivileged caller refused;
# the restart ioctls' behaviour: park on close, adopt, reclaim with the device.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$kmod_check"
rc=0
"$kmod_check" errno || rc=1
"$kmod_check" park || rc=1
if command -v setpriv >/dev/null; then
	setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all --bounding-set=-all \
		"$kmod_check" unpriv || rc=1
else
	echo "FAIL: kmod_unpriv setpriv missing (util-linux)"; rc=1
fi
exit $rc
