#!/usr/bin/env bash
# registry_reuse: one endpoint serves connection after connection (kConnectReuse): utcpd
# moves it to a new port each time, without a new endpoint file, the module's TCP tracking
# starts afresh, every byte of each connection comes back from a kernel-TCP echo server,
# and utcpd refuses to move an endpoint that is not the asking client's.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier

probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp-test/utcpd.sock
start_utcpd

port=7007
in_b socat TCP-LISTEN:$port,fork,reuseaddr EXEC:cat >/dev/null 2>&1 &
echo_pid=$!
wait_for 10 listening_in "$UTCP_NS_B" $port
out=$(in_a timeout 120 "$probe" reuse "$UTCP_IP_B" $port 4 100000 2>&1)
echo "$out"
check "four connections over one endpoint, each 100000 bytes echoed" '[ "$(echo "$out" | grep -c "^round [0-3] port [0-9]* echoed 100000$")" = 4 ]'
check "each reuse keeps the endpoint and sends no file" '[ "$(echo "$out" | grep -c "^reused endpoint [0-9]* file none ")" = 3 ]'
ports=$(echo "$out" | sed -n 's/^round [0-3] port \([0-9]*\) echoed.*/\1/p' | sort -u | wc -l)
check "each connection from its own port" '[ "$ports" = 4 ]'
check "the module's TCP tracking starts afresh with the new template" '! echo "$out" | grep "^reused endpoint" | grep -qv "tracking afresh$"'
check "reuse of an unknown endpoint refused (ENOENT)" 'echo "$out" | grep -q "^reuse of an unknown endpoint: ENOENT$"'
check "reuse of another client's endpoint refused (ENOENT)" 'echo "$out" | grep -q "^reuse of another client.s endpoint: ENOENT "'
check "utcpd logged each move" '[ "$(grep -c "endpoint [0-9]* reused:" /tmp/utcpd.log)" = 3 ]'
# The last connection closed first (TIME-WAIT) when its client exited: utcpd inherits it
# on the port it moved to, from the module's tracking of the new 4-tuple alone.
last=$(echo "$out" | sed -n 's/^round 3 port \([0-9]*\) echoed.*/\1/p')
check "utcpd inherits the last connection on its new port (TIME-WAIT)" \
	'wait_for 10 grep -q "exited: endpoint [0-9]* port $last closed: TIME-WAIT" /tmp/utcpd.log'
check "utcpd still answers" 'in_a "$probe" hello >/dev/null'

# utcp-perf's connections per second with the prefetcher recycle endpoints: all served.
perf=$UTCP_BUILD/tools/utcp-perf/utcp-perf
in_b "$perf" server --bind "$UTCP_IP_B" --port 5202 2>/tmp/reuse-server.err &
server=$!
wait_for 10 grep -q listening /tmp/reuse-server.err
out=$(in_a timeout 120 "$perf" --client "$UTCP_IP_B" --port 5202 --stack utcp --handshake prefetch --crr 64 --iterations 40 --json --quiet 2>&1)
echo "$out"
check "crr over recycled endpoints: 40 connections" 'echo "$out" | grep -q "\"connections\": 40"'
check "crr recycled endpoints" '[ "$(grep -c "endpoint [0-9]* reused:" /tmp/utcpd.log)" -gt 10 ]'

kill $server $echo_pid 2>/dev/null
wait $server $echo_pid 2>/dev/null
stop_utcpd
finish
