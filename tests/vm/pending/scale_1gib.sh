#!/usr/bin/env bash
# scale_1gib: 1 GiB each way at once on one connection between utcp (utcp-xfer, bulk
# rings) and the kernel's TCP (nc in the other namespace), sha256 checked on both sides.
# The data come from a seeded generator (AES-CTR keystream from openssl) on each side
# instead of files: 2 GiB would not fit beside the guest's 2 GiB of RAM. Each sender
# hashes what it generated as it goes (tee), each receiver what it got.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
command -v openssl >/dev/null || { echo "SKIP: no openssl for the seeded generator"; exit 77; }
xfer=$UTCP_BUILD/examples/utcp-xfer
export UTCP_REGISTRY=/run/utcp/utcpd.sock
bytes=${UTCP_SCALE_BYTES:-1073741824}
start_utcpd >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
port=7300

gen() {  # SEED: an endless deterministic byte stream
	openssl enc -aes-128-ctr -nosalt -K "$(printf '%032x' "$1")" -iv 0 -in /dev/zero 2>/dev/null
}
rm -f /tmp/g.*
# The kernel side: listens, sends its 1 GiB, hashes what arrives.
# The generator ends by SIGPIPE when head has its bytes: each side's status is that of
# its transfer program (PIPESTATUS), not the pipeline's.
in_b bash -c "$(declare -f gen); gen 2 | head -c $bytes | tee >(sha256sum | cut -d' ' -f1 > /tmp/g.sent_b) |
	timeout 900 nc -N -l $UTCP_IP_B $port | sha256sum | cut -d' ' -f1 > /tmp/g.recv_b; exit \${PIPESTATUS[3]}" 2>/tmp/g.nc.err &
kside=$!
wait_for 30 sh -c "ip netns exec $UTCP_NS_B ss -ltn | grep -q ':$port '" || { echo "FAIL: nc listens"; exit 1; }
start=$(date +%s)
in_a bash -c "$(declare -f gen); gen 1 | head -c $bytes | tee >(sha256sum | cut -d' ' -f1 > /tmp/g.sent_a) |
	timeout 900 $xfer connect $UTCP_IP_B $port --bulk | sha256sum | cut -d' ' -f1 > /tmp/g.recv_a; exit \${PIPESTATUS[3]}" 2>/tmp/g.xfer.err
urc=$?
wait $kside
krc=$?
secs=$(( $(date +%s) - start ))
# tee's hashers finish after the pipelines: wait for their output.
wait_for 60 test -s /tmp/g.sent_a -a -s /tmp/g.sent_b
check "utcp-xfer and nc both finish (exit $urc, $krc; ${secs} s)" '[ "$urc" = 0 ] && [ "$krc" = 0 ]'
check "utcp -> kernel: $bytes bytes, sha256 equal" '[ -s /tmp/g.recv_b ] && [ "$(cat /tmp/g.recv_b)" = "$(cat /tmp/g.sent_a)" ]'
check "kernel -> utcp: $bytes bytes, sha256 equal" '[ -s /tmp/g.recv_a ] && [ "$(cat /tmp/g.recv_a)" = "$(cat /tmp/g.sent_b)" ]'
check "the two directions carried different data" '[ "$(cat /tmp/g.sent_a)" != "$(cat /tmp/g.sent_b)" ]'
cat /tmp/g.xfer.err /tmp/g.nc.err
stop_utcpd | tail -n 5
finish
