#!/usr/bin/env bash
# registry_handoff: a live utcp connection handed from one process to another without the
# registry (paper §3.2, the inetd case): utcp-handoff sends half a file, passes the
# endpoint file and TCP state to a second process and exits; the second sends the rest.
# The kernel peer must see one unbroken stream (sha256), utcpd must not reset the
# connection when the first process exits, and inherits it only after the second exits.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
handoff=$UTCP_BUILD/examples/utcp-handoff
export UTCP_REGISTRY=/run/utcp/utcpd.sock
start_utcpd --time-wait-ms 5000 -v >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }

head -c $((2 << 20)) /dev/urandom > /tmp/2m
in_b python3 "$peer" sink "$UTCP_IP_B" 7201 > /tmp/sink.out 2>/tmp/sink.err &
p=$!
wait_for 30 grep -q listening /tmp/sink.err
in_a timeout 120 "$handoff" "$UTCP_IP_B" 7201 /tmp/2m 2>/tmp/handoff.err
rc=$?
check "the first process handed the connection over and exited" '[ "$rc" = 0 ] && grep -q "handed the connection to pid" /tmp/handoff.err'
wait_for 120 grep -q . /tmp/sink.out
wait $p
want="$(stat -c %s /tmp/2m) $(sha256sum < /tmp/2m | cut -d' ' -f1)"
check "the peer got one unbroken stream (sha256 equal)" '[ "$(cat /tmp/sink.out)" = "$want" ]'
cat /tmp/handoff.err
wait_for 30 grep -q "receiver.*closed" /tmp/handoff.err
check "the second process sent the rest and closed" 'grep -q "receiver.*closed" /tmp/handoff.err'
check "utcpd did not reset the connection when the first process exited" '! grep -q "abandoned: RST" /tmp/utcpd.log'
wait_for 30 grep -q "closed: TIME-WAIT held by utcpd" /tmp/utcpd.log
check "utcpd inherited the connection once the second process exited" '[ $? = 0 ]'
wait_for 30 no_live_endpoints
check "the endpoint is reclaimed after TIME-WAIT" '[ "$(live_endpoints)" = 0 ]'
stop_utcpd >/dev/null
finish
