#!/usr/bin/env bash
# registry_inherit: utcpd inherits the connections of applications that exit (paper §3.4).
# kill -9 of a utcp application mid-transfer -> the kernel peer sees a RST, the endpoint
# and the port are reclaimed; an application that closes and exits -> utcpd holds the
# port through TIME-WAIT, then releases it; the module's counters show nothing leaked.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
export UTCP_REGISTRY=/run/utcp/utcpd.sock
start_utcpd --time-wait-ms 20000 -v >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }

# Whether a kernel socket in namespace A can bind local port $1 (utcpd reserves the ports
# it grants): nc listens there until timeout (124), or fails at once when the port is taken.
# (Not python: its start-up under TCG takes longer than the TIME-WAIT being checked.)
kernel_can_bind() {  # a plain bind (registry_probe: starts fast, unlike nc under `timeout 1` on a loaded guest)
	[ "$(in_a "$UTCP_BUILD/tests/registry/registry_probe" kernel-bind "$UTCP_IP_A" "$1")" = bound ]
}
# The local port of the newest endpoint utcpd granted ("endpoint N for A:P -> B:Q").
last_port() { grep -o "endpoint [0-9]* for [0-9.]*:[0-9]*" /tmp/utcpd.log | tail -n1 | sed 's/.*://'; }

# --- kill -9 mid-transfer: the peer must see a RST from utcpd
in_b python3 "$peer" watch "$UTCP_IP_B" 7101 > /tmp/watch.out 2>/tmp/watch.err &
w=$!
wait_for 30 grep -q listening /tmp/watch.err
ip netns exec "$UTCP_NS_A" "$xfer" connect "$UTCP_IP_B" 7101 < /dev/zero > /dev/null 2>/tmp/xfer.err &
x=$!
wait_for 60 grep -q progress /tmp/watch.err
check "data flows before the kill" '[ $? = 0 ]'
port=$(last_port)
echo "    [$SECONDS s] killing utcp-xfer"
kill -9 $x
wait $x 2>/dev/null
wait_for 30 grep -q . /tmp/watch.out
wait $w
echo "    [$SECONDS s] peer done"
check "kill -9: the kernel peer sees the connection reset" 'grep -q "^reset" /tmp/watch.out'
cat /tmp/watch.out
check "kill -9: utcpd logged the abandoned connection" 'grep -q "abandoned: RST sent" /tmp/utcpd.log'
wait_for 20 no_live_endpoints
check "kill -9: the endpoint is reclaimed (no live endpoints)" '[ "$(live_endpoints)" = 0 ]'
check "kill -9: port $port is free for the kernel again" 'kernel_can_bind "$port"'

# --- orderly close and exit: utcpd holds TIME-WAIT, then frees the port
in_b python3 "$peer" watch "$UTCP_IP_B" 7102 > /tmp/watch.out 2>/tmp/watch.err &
w=$!
wait_for 30 grep -q listening /tmp/watch.err
head -c 200000 /dev/urandom > /tmp/200k
in_a timeout 60 "$xfer" connect "$UTCP_IP_B" 7102 < /tmp/200k > /dev/null 2>/tmp/xfer.err
rc=$?
port=$(last_port)
check "orderly: port $port stays reserved after the application exited" '! kernel_can_bind "$port"'
echo "    [$SECONDS s] exited"
wait $w
check "orderly: the transfer ended with EOF at the peer, every byte there" '[ "$rc" = 0 ] && [ "$(cat /tmp/watch.out)" = "eof 200000" ]'
wait_for 5 grep -q "closed: TIME-WAIT held by utcpd" /tmp/utcpd.log
check "orderly: utcpd holds the exited application's TIME-WAIT" '[ $? = 0 ]'
check "orderly: port $port still reserved in TIME-WAIT" '! kernel_can_bind "$port"'
echo "    [$SECONDS s] waiting for the end of TIME-WAIT"
wait_for 60 kernel_can_bind "$port"
echo "    [$SECONDS s] port free"
check "orderly: port $port is free after TIME-WAIT" 'kernel_can_bind "$port"'
wait_for 10 no_live_endpoints
check "orderly: the endpoint is reclaimed after TIME-WAIT" '[ "$(live_endpoints)" = 0 ]'

check "utcpd is still running after both exits" 'kill -0 "$UTCPD_PID"'
stop_utcpd >/dev/null
finish
