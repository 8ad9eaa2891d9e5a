#!/usr/bin/env bash
# registry_neighbour: a Connect whose next hop does not answer ARP no longer stops utcpd
# (issue 8.4). The request is parked while the kernel resolves the address; utcpd goes
# on answering everyone else meanwhile; after neighbour_wait_ms the parked request gets
# "no ARP answer"; a client that leaves while parked is forgotten.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp/utcpd.sock
absent=${UTCP_IP_B%.*}.200  # on the link's subnet, nobody there

# The default wait: the request ends with EHOSTUNREACH (registry_probe exits 1 for an
# errno above 99) and says why.
start_utcpd >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
out=$(in_a timeout 60 "$probe" connect "$absent" 5001 2>&1)
rc=$?
check "connect to an address nobody answers: refused after the wait, 'no ARP answer' (exit $rc)" \
	'[ "$rc" = 1 ] && echo "$out" | grep -q "no ARP answer"'
echo "    $out"
check "that request was parked, not waited for in the event loop" 'grep -q "parked until" /tmp/utcpd.log'
stop_utcpd >/dev/null

# A wait longer than this test: while a request is parked, others are served.
printf 'neighbour_wait_ms 600000\n' > /tmp/utcpd-nw.conf
start_utcpd -f /tmp/utcpd-nw.conf >/dev/null || { echo "FAIL: utcpd starts again"; exit 1; }
in_a timeout 300 "$probe" connect "$absent" 5002 >/tmp/parked.out 2>&1 &
parked=$!
wait_for 60 grep -q "connect to $absent parked" /tmp/utcpd.log
check "connect to $absent parked" '[ $? = 0 ]'
out=$(in_a timeout 60 "$probe" hello 2>&1)
check "hello answered while it is parked" 'echo "$out" | grep -q "^module_abi "'
out=$(in_a timeout 60 "$probe" connect "$UTCP_IP_B" 5001 2>&1)
check "a connect to a known neighbour granted while it is parked" 'echo "$out" | grep -q "^endpoint_file yes$"'
check "the parked request is still waiting" 'kill -0 $parked 2>/dev/null && [ ! -s /tmp/parked.out ]'
# Its client leaves: utcpd forgets the request and carries on.
kill $parked
wait $parked 2>/dev/null
out=$(in_a timeout 60 "$probe" connect "$UTCP_IP_B" 5001 2>&1)
check "utcpd serves on after the parked client left" 'echo "$out" | grep -q "^endpoint_file yes$"'
check "utcpd still runs" 'kill -0 $UTCPD_PID'
stop_utcpd | grep -iE "error|abort" | head -5
# The probes' granted connections were still held when utcpd stopped: it parked its
# attachment for a successor to recover. The next script starts fresh: discard it.
start_utcpd --no-recover >/dev/null && wait_for 60 test -S "$UTCP_REGISTRY"
stop_utcpd >/dev/null
finish
