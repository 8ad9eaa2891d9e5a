#!/usr/bin/env bash
# kmod_lifecycle.sh - endpoint lifetimes and leak counters; the module cannot be
# unloaded while any of its files is open.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$kmod_check" "$utcpctl"
rc=0
"$kmod_check" lifecycle || rc=1

# A process holding a control file and an endpoint pins the module.
fifo=/tmp/kmod_lifecycle.$$
mkfifo "$fifo"
ip netns exec "${UTCP_NS_A:-utcp-a}" "$utcpctl" run - >/tmp/kmod_lifecycle.out 2>&1 <"$fifo" &
holder=$!
exec 8>"$fifo"
printf 'attach %s\nendpoint-create e --mac %s --proto udp --local %s:5000 --remote %s:6000\n' \
	"${UTCP_IF_A:-va}" "${UTCP_MAC_A:-02:00:00:00:00:01}" "${UTCP_IP_A:-10.77.0.1}" "${UTCP_IP_B:-10.77.0.2}" >&8
for _ in $(seq 50); do grep -q '^endpoint e' /tmp/kmod_lifecycle.out && break; sleep 0.1; done
if grep -q '^endpoint e' /tmp/kmod_lifecycle.out; then
	if rmmod utcp 2>/dev/null; then
		echo "FAIL: kmod_unload_refused_while_open rmmod succeeded with files open"; rc=1
		exec 8>&-; wait "$holder"
		rm -f "$fifo"; exit 1
	else
		echo "PASS: kmod_unload_refused_while_open"
	fi
else
	echo "FAIL: kmod_unload_refused_while_open utcpctl did not create the endpoint: $(cat /tmp/kmod_lifecycle.out)"; rc=1
fi
exec 8>&-
wait "$holder"
rm -f "$fifo"
exit $rc
