#!/usr/bin/env bash
# udp_echo: the second protocol through the same module (paper §1.1; issue 5): a libutcp
# UDP endpoint granted by utcpd (UDP template, UDP port reserved in the kernel) exchanges
# datagrams with the kernel's UDP in the other namespace, each echoed byte for byte.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
export UTCP_REGISTRY=/run/utcp/utcpd.sock
start_utcpd >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }

in_b python3 -c "
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(('$UTCP_IP_B', 7300))
s.settimeout(120)
print('listening', file=sys.stderr, flush=True)
n = 0
try:
    while True:
        b, a = s.recvfrom(65536)
        s.sendto(b, a)
        n += 1
except socket.timeout:
    pass
" 2>/tmp/udp.err &
srv=$!
for _ in $(seq 300); do grep -q listening /tmp/udp.err 2>/dev/null && break; sleep 0.1; done

out=$(in_a timeout 120 "$UTCP_BUILD/examples/utcp-udp" "$UTCP_IP_B" 7300 200 1000 2>&1)
echo "    $out"
check "200 datagrams of 1000 B echoed by kernel UDP, every byte" 'echo "$out" | grep -q "^sent 200 echoed 200"'
out=$(in_a timeout 120 "$UTCP_BUILD/examples/utcp-udp" "$UTCP_IP_B" 7300 50 1472 2>&1)
echo "    $out"
check "50 datagrams of 1472 B (a full frame) echoed" 'echo "$out" | grep -q "^sent 50 echoed 50"'
check "utcpd granted UDP endpoints" 'grep -q "UDP endpoint" /tmp/utcpd.log'
kill $srv 2>/dev/null; wait $srv 2>/dev/null
stop_utcpd >/dev/null
sleep 0.5
check "endpoints reclaimed" '[ "$(in_a "$UTCP_BUILD/tests/registry/registry_probe" live-endpoints)" = 0 ]'
finish
