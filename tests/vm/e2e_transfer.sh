#!/usr/bin/env bash
# e2e_transfer: libutcp's TCP, over an endpoint granted by utcpd (which runs the
# three-way handshake and hands the connection over, paper §3.4), moves bytes both ways
# with the kernel's own TCP on the other host; every byte checked by sha256, on a clean
# link and under netem loss and reordering.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
xfer=$UTCP_BUILD/examples/utcp-xfer
peer=$UTCP_SRC/tests/vm/tcp_peer.py
export UTCP_REGISTRY=/run/utcp/utcpd.sock
start_utcpd >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
port=7000

to_kernel() {  # NAME FILE [utcp-xfer option]
	port=$((port + 1))
	in_b python3 "$peer" sink "$UTCP_IP_B" $port > /tmp/sink.out 2>/tmp/sink.err &
	local p=$!
	until grep -q listening /tmp/sink.err 2>/dev/null; do sleep 0.1; done
	in_a timeout 120 "$xfer" connect "$UTCP_IP_B" $port ${3:-} < "$2" > /dev/null 2>/tmp/xfer.err
	local rc=$?
	wait $p
	local want got
	want="$(stat -c %s "$2") $(sha256sum < "$2" | cut -d' ' -f1)"
	got=$(cat /tmp/sink.out)
	check "$1: utcp -> kernel, sha256 equal" '[ "$rc" = 0 ] && [ "$got" = "$want" ]'
	[ "$got" = "$want" ] || { echo "want $want got $got rc $rc"; cat /tmp/xfer.err; }
}

from_kernel() {  # NAME FILE
	port=$((port + 1))
	in_b python3 "$peer" source "$UTCP_IP_B" $port "$2" 2>/tmp/src.err &
	local p=$!
	until grep -q listening /tmp/src.err 2>/dev/null; do sleep 0.1; done
	local got want
	got=$(in_a timeout 120 "$xfer" connect "$UTCP_IP_B" $port < /dev/null 2>/tmp/xfer.err | sha256sum | cut -d' ' -f1)
	wait $p
	want=$(sha256sum < "$2" | cut -d' ' -f1)
	check "$1: kernel -> utcp, sha256 equal" '[ "$got" = "$want" ]'
	[ "$got" = "$want" ] || cat /tmp/xfer.err
}

printf x > /tmp/one
head -c 65536 /dev/urandom > /tmp/64k
head -c $((1 << 20)) /dev/urandom > /tmp/1m
head -c $((256 << 10)) /dev/urandom > /tmp/256k
to_kernel "1 byte" /tmp/one
grep -q "registry handshake" /tmp/xfer.err
check "utcpd ran the handshake and handed the connection over" '[ $? = 0 ]'
to_kernel "64 KiB, handshake in the library" /tmp/64k --local-handshake
from_kernel "1 byte" /tmp/one
to_kernel "64 KiB" /tmp/64k
from_kernel "64 KiB" /tmp/64k
to_kernel "1 MiB" /tmp/1m
from_kernel "1 MiB" /tmp/1m

modprobe sch_netem
in_a tc qdisc add dev "$UTCP_IF_A" root netem loss 1% delay 1ms reorder 5% 50%
in_b tc qdisc add dev "$UTCP_IF_B" root netem loss 1% delay 1ms reorder 5% 50%
to_kernel "256 KiB, 1% loss + reordering" /tmp/256k
from_kernel "256 KiB, 1% loss + reordering" /tmp/256k
in_a tc qdisc del dev "$UTCP_IF_A" root
in_b tc qdisc del dev "$UTCP_IF_B" root

stop_utcpd >/dev/null
sleep 0.5
check "module endpoints reclaimed after the transfers" '[ "$(in_a "$UTCP_BUILD/tests/registry/registry_probe" live-endpoints)" = 0 ]'
finish
