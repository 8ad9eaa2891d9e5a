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

# utcp -> kernel: nc receives (-d: it reads no stdin) and exits at utcp-xfer's FIN.
port=7300
in_b bash -c "timeout 900 nc -d -l $UTCP_IP_B $port | sha256sum | cut -d' ' -f1 > /tmp/g.recv_b; exit \${PIPESTATUS[0]}" \
	2>/tmp/g.nc1.err &
kside=$!
wait_for 30 listening $port || { echo "FAIL: nc listens"; stop_utcpd; exit 1; }
start=$(date +%s)
in_a timeout 900 "$xfer" connect "$UTCP_IP_B" $port --bulk --send-seeded "1:$bytes" --hash-received </dev/null \
	2>/tmp/g.xfer1.err
urc=$?
wait $kside
krc=$?
secs=$(( $(date +%s) - start ))
sent_a=$(sed -n "s/^utcp-xfer: sent $bytes \([0-9a-f]\{64\}\)$/\1/p" /tmp/g.xfer1.err)
check "utcp -> kernel: utcp-xfer and nc finish (exit $urc, $krc; ${secs} s for $bytes bytes)" \
	'[ "$urc" = 0 ] && [ "$krc" = 0 ]'
check "utcp -> kernel: $bytes bytes sent, sha256sum of what nc got equals the sender's" \
	'[ -n "$sent_a" ] && [ "$(cat /tmp/g.recv_b 2>/dev/null)" = "$sent_a" ]'
grep -h "utcp-xfer: sent [0-9]* bytes" /tmp/g.xfer1.err | sed 's/^/    /'
[ "$urc" = 0 ] && [ "$krc" = 0 ] || cat /tmp/g.xfer1.err /tmp/g.nc1.err

# kernel -> utcp: nc sends utcp-stream's stream and ends its direction (-N) at the end of
# it; utcp-xfer hashes what arrives and sends its FIN only then (nc stops reading at the
# first end of stream it sees).
port=7301
in_b bash -c "$stream gen 2 $bytes 2>/tmp/g.sent_b | timeout 900 nc -N -l $UTCP_IP_B $port >/dev/null; exit \${PIPESTATUS[1]}" \
	2>/tmp/g.nc2.err &
kside=$!
wait_for 30 listening $port || { echo "FAIL: nc listens"; stop_utcpd; exit 1; }
start=$(date +%s)
in_a timeout 900 "$xfer" connect "$UTCP_IP_B" $port --bulk --hash-received --fin-after-peer </dev/null \
	2>/tmp/g.xfer2.err
urc=$?
wait $kside
krc=$?
secs=$(( $(date +%s) - start ))
recv_a=$(sed -n 's/^utcp-xfer: received \([0-9]* [0-9a-f]\{64\}\)$/\1/p' /tmp/g.xfer2.err)
check "kernel -> utcp: nc and utcp-xfer finish (exit $krc, $urc; ${secs} s for $bytes bytes)" \
	'[ "$urc" = 0 ] && [ "$krc" = 0 ]'
check "kernel -> utcp: $bytes bytes received, sha256 equals utcp-stream's for what it sent" \
	'[ -n "$recv_a" ] && [ "$recv_a" = "$(cat /tmp/g.sent_b 2>/dev/null)" ] && [ "${recv_a%% *}" = "$bytes" ]'
grep -h "utcp-xfer: sent [0-9]* bytes" /tmp/g.xfer2.err | sed 's/^/    /'
[ "$urc" = 0 ] && [ "$krc" = 0 ] || cat /tmp/g.xfer2.err /tmp/g.nc2.err
check "the two directions carried different data" '[ -n "$sent_a" ] && [ "$sent_a" != "${recv_a#* }" ]'
stop_utcpd | grep -iE "error|fail" | head -5
finish
