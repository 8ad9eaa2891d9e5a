#!/usr/bin/env bash
# scale_1gib: 1 GiB each way, one direction after the other, on connections between utcp
# (utcp-xfer, bulk rings) and the kernel's TCP (nc in the other namespace), SHA-256
# checked end to end (issue 6). The data are a seeded stream (splitmix64, utcp-stream
# and utcp-xfer --send-seeded make the same one) instead of files: 1 GiB would not fit
# beside the guest's RAM, and an AES/openssl generator plus tee cost more CPU than the
# emulated guest has. Each sender hashes what it generated, each receiver what it got:
# utcp -> kernel is checked by coreutils' sha256sum against utcp-xfer's own SHA-256,
# kernel -> utcp by utcp-xfer's hash against utcp-stream's. The seconds each direction
# took are printed (informational; nothing here is timed).
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
xfer=$UTCP_BUILD/examples/utcp-xfer
stream=$UTCP_BUILD/examples/utcp-stream
export UTCP_REGISTRY=/run/utcp/utcpd.sock
# A socket file left by an earlier script's utcpd would pass for the new one before it binds.
rm -f "$UTCP_REGISTRY"
bytes=${UTCP_SCALE_BYTES:-1073741824}
start_utcpd >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
rm -f /tmp/g.*
listening() { ip netns exec "$UTCP_NS_B" ss -ltn | grep -q ":$1 "; }
# pair N PORT KERNEL_CMD XFER_ARGS...: the kernel side (KERNEL_CMD, bash, in B; listens on
# PORT) and utcp-xfer connecting to it from A; sets urc, krc and secs. Logs /tmp/g.*N.err.
pair() {
	local n=$1 port=$2 kcmd=$3 kside start; shift 3
	in_b bash -c "$kcmd" 2>/tmp/g.nc$n.err &
	kside=$!
	wait_for 30 listening "$port" || { echo "FAIL: nc listens"; stop_utcpd; exit 1; }
	start=$(date +%s)
	in_a timeout 900 "$xfer" connect "$UTCP_IP_B" "$port" --bulk "$@" </dev/null 2>/tmp/g.xfer$n.err
	urc=$?
	wait $kside
	krc=$?
	secs=$(( $(date +%s) - start ))
}
# shown N: utcp-xfer's summary line; both logs when either side failed
shown() {
	grep -h "utcp-xfer: sent [0-9]* bytes" /tmp/g.xfer$1.err | sed 's/^/    /'
	[ "$urc" = 0 ] && [ "$krc" = 0 ] || cat /tmp/g.xfer$1.err /tmp/g.nc$1.err
}

# utcp -> kernel: nc receives (-d: it reads no stdin) and exits at utcp-xfer's FIN.
pair 1 7300 "timeout 900 nc -d -l $UTCP_IP_B 7300 | sha256sum | cut -d' ' -f1 > /tmp/g.recv_b; exit \${PIPESTATUS[0]}" \
	--send-seeded "1:$bytes" --hash-received
sent_a=$(sed -n "s/^utcp-xfer: sent $bytes \([0-9a-f]\{64\}\)$/\1/p" /tmp/g.xfer1.err)
check "utcp -> kernel: utcp-xfer and nc finish (exit $urc, $krc; ${secs} s for $bytes bytes)" \
	'[ "$urc" = 0 ] && [ "$krc" = 0 ]'
check "utcp -> kernel: $bytes bytes sent, sha256sum of what nc got equals the sender's" \
	'[ -n "$sent_a" ] && [ "$(cat /tmp/g.recv_b 2>/dev/null)" = "$sent_a" ]'
shown 1

# kernel -> utcp: nc sends utcp-stream's stream and ends its direction (-N) at the end of
# it; utcp-xfer hashes what arrives and sends its FIN only then (nc stops reading at the
# first end of stream it sees).
pair 2 7301 "$stream gen 2 $bytes 2>/tmp/g.sent_b | timeout 900 nc -N -l $UTCP_IP_B 7301 >/dev/null; exit \${PIPESTATUS[1]}" \
	--hash-received --fin-after-peer
recv_a=$(sed -n 's/^utcp-xfer: received \([0-9]* [0-9a-f]\{64\}\)$/\1/p' /tmp/g.xfer2.err)
check "kernel -> utcp: nc and utcp-xfer finish (exit $krc, $urc; ${secs} s for $bytes bytes)" \
	'[ "$urc" = 0 ] && [ "$krc" = 0 ]'
check "kernel -> utcp: $bytes bytes received, sha256 equals utcp-stream's for what it sent" \
	'[ -n "$recv_a" ] && [ "$recv_a" = "$(cat /tmp/g.sent_b 2>/dev/null)" ] && [ "${recv_a%% *}" = "$bytes" ]'
shown 2
check "the two directions carried different data" '[ -n "$sent_a" ] && [ "$sent_a" != "${recv_a#* }" ]'
stop_utcpd | grep -iE "error|fail" | head -5
finish
