#!/usr/bin/env bash
# registry_basic: utcpd attaches, grants endpoints with templates built from the kernel's
# facts, reserves ports in the kernel, refuses what a user may not have, survives hostile
# clients, and reclaims everything when a client goes away.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier

probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp-test/utcpd.sock

out=$(in_a "$probe" hello 2>&1)
check "clear message when utcpd is not running" 'echo "$out" | grep -q "utcpd not running"'

start_utcpd
out=$(in_a "$probe" hello 2>&1)
want=$(sed -n "s/^#define UTCP_ABI_VERSION \([0-9]*\).*/\1/p" "$UTCP_SRC/include/uapi/linux/utcp.h")
check "hello answers with the module ABI" 'echo "$out" | grep -q "^module_abi $want$"'

out=$(in_a "$probe" connect "$UTCP_IP_B" 5001 2>&1)
echo "$out"
check "connect grant carries an endpoint file" 'echo "$out" | grep -q "^endpoint_file yes$"'
check "next-hop MAC resolved from the kernel neighbour table" 'echo "$out" | grep -qi "^next_hop_mac $UTCP_MAC_B$"'
check "local address is the interface's" 'echo "$out" | grep -q "^local $UTCP_IP_A:"'
lport=$(echo "$out" | sed -n "s/^local $UTCP_IP_A:\([0-9]*\)$/\1/p")
range=$(cat /proc/sys/net/ipv4/ip_local_port_range)
check "ephemeral port from the kernel's range" '[ -n "$lport" ] && [ "$lport" -ge ${range%%[[:space:]]*} ] && [ "$lport" -le ${range##*[[:space:]]} ]'

# While a grant is held its port is reserved in the kernel too.
in_a "$probe" connect "$UTCP_IP_B" 5001 40123 --hold 300 > /tmp/held.out 2>&1 &
holder=$!
for _ in $(seq 100); do grep -q '^endpoint_file' /tmp/held.out 2>/dev/null && break; sleep 0.1; done
# A plain bind (no SO_REUSEADDR, unlike nc). The holder holds for 300 s and is killed below.
bind_rc=$(in_a "$probe" kernel-bind "$UTCP_IP_A" 40123)
check "port held by utcp is refused to kernel sockets" '[ "${bind_rc%% *}" = refused ]'
out=$(in_a "$probe" connect "$UTCP_IP_B" 5001 40123 2>&1)
check "same port twice refused (in use)" 'echo "$out" | grep -q "in use"'
check "holder got its endpoint" 'grep -q "^endpoint_file yes$" /tmp/held.out'
pkill -f "registry_probe connect $UTCP_IP_B 5001 40123"
wait $holder  # not a bare `wait`: utcpd is a background job too
kbind() { [ "$(in_a "$probe" kernel-bind "$UTCP_IP_A" "$1")" = bound ]; }
wait_for 20 kbind 40123
bind_rc=$(in_a "$probe" kernel-bind "$UTCP_IP_A" 40123)
check "port free again once the client exited" '[ "$bind_rc" = bound ]'
check "module endpoints reclaimed after client exit" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'

out=$(in_a setpriv --reuid 65534 --regid 65534 --clear-groups "$probe" connect "$UTCP_IP_B" 5001 80 2>&1)
check "unprivileged user refused a port below 1024" 'echo "$out" | grep -q "below 1024"'
out=$(in_a setpriv --reuid 65534 --regid 65534 --clear-groups "$probe" connect "$UTCP_IP_B" 5001 2>&1)
check "unprivileged user gets an ephemeral port" 'echo "$out" | grep -q "^endpoint_file yes$"'

out=$(in_a "$probe" connect 192.0.2.1 80 2>&1)
check "unroutable destination refused with a reason" 'echo "$out" | grep -q "no route\|not reached"'

out=$(in_a "$probe" garbage 3000 2>&1)
check "utcpd survives 3000 hostile messages" 'echo "$out" | grep -q "still answers"'
check "utcpd process still alive" 'kill -0 $UTCPD_PID'
check "no endpoints leaked by hostile clients" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'
stop_utcpd
finish
