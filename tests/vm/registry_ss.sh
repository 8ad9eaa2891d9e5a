#!/usr/bin/env bash
# registry_ss: `utcpctl ss` shows utcp's connections as ss(8) shows the kernel's — the
# state and counters each connection's stack publishes in its endpoint's header page
# (uapi utcp_app_info, read by utcpd through UTCP_IOC_EP_APP_INFO), the module's counters,
# utcpd's own listens and the connections it inherited; JSON for scripts; other users'
# processes hidden from an unprivileged caller.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
xfer=$UTCP_BUILD/examples/utcp-xfer
ctl=$UTCP_BUILD/tools/utcpctl
export UTCP_REGISTRY=/run/utcp/utcpd.sock
start_utcpd --time-wait-ms 30000 >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }

# A connection that stays up while we look: 100 KB, then its input stays open until
# /tmp/ss.go appears. The kernel sink reads to EOF and closes after utcp did (utcp-xfer
# closes first, so utcpd inherits TIME-WAIT below).
peer=$UTCP_SRC/tests/vm/tcp_peer.py
in_b python3 "$peer" sink "$UTCP_IP_B" 7400 > /tmp/ss.sink 2>/tmp/ss.sink.err &
sink=$!
wait_for 120 grep -q listening /tmp/ss.sink.err
head -c 100000 /dev/urandom > /tmp/ss.data
rm -f /tmp/ss.go
( cat /tmp/ss.data; while [ ! -f /tmp/ss.go ]; do sleep 0.2; done ) |
	in_a timeout 600 "$xfer" connect "$UTCP_IP_B" 7400 > /dev/null 2>/tmp/ss.xfer &
app=$!
# Every byte acknowledged, as the stack itself publishes it (bytes_sent counts ACKed data).
sent_all() { in_a "$ctl" ss -i 2>/dev/null | grep -A1 "$UTCP_IP_B:7400" | grep -q "bytes_sent:100000 "; }
wait_for 120 sent_all
xpid=$(pgrep -x utcp-xfer | head -n1)  # the program itself, not the `timeout` wrapping it

out=$(in_a "$ctl" ss -i 2>&1)
echo "$out" | sed 's/^/    /'
line=$(echo "$out" | grep "$UTCP_IP_B:7400" | head -n1)
check "ss lists the connection as ESTABLISHED with its addresses" \
	'echo "$line" | grep -q "^tcp  *ESTABLISHED .*$UTCP_IP_A:[0-9]*  *$UTCP_IP_B:7400"'
check "ss names the application's process" 'echo "$line" | grep -q "pid=$xpid,"'
check "ss -i shows the stack's congestion control, RTT and cwnd" \
	'echo "$out" | grep -A1 "$UTCP_IP_B:7400" | grep -q "cubic.*rtt:[0-9.]*/[0-9.]*ms.*cwnd:[1-9][0-9]*"'
check "ss -i shows the module's counters for the endpoint" \
	'echo "$out" | grep -A2 "$UTCP_IP_B:7400" | grep -q "module: rx [1-9][0-9]* frames.*tx [1-9][0-9]* frames"'

json=$(in_a "$ctl" ss --json)
check "ss --json: bytes_sent covers the 100 KB, nothing queued, the state and pid agree" "python3 -c '
import json, sys
e = [x for x in json.loads(sys.argv[1]) if x[\"remote\"] == \"$UTCP_IP_B:7400\"][0]
t = e[\"tcp\"]
assert e[\"state\"] == \"ESTABLISHED\" and e[\"role\"] == \"connection\", e
assert t[\"bytes_sent\"] >= 100000 and t[\"send_queue\"] == 0 and t[\"pid\"] == $xpid, t
assert t[\"srtt_us\"] > 0 and t[\"cwnd\"] > 0 and e[\"module\"][\"tx_bytes\"] > 100000, e
' \"\$json\""

other=$(in_a setpriv --reuid 65534 --regid 65534 --clear-groups "$ctl" ss 2>&1)
check "an unprivileged user sees the connection but not its process" \
	'echo "$other" | grep "$UTCP_IP_B:7400" | grep -q " ep=[0-9]*$" && ! echo "$other" | grep -q "pid="'

# utcpd's own listen for an application (passive open through the registry).
in_a "$xfer" listen 7401 < /dev/null > /dev/null 2>/tmp/ss.listen &
lis=$!
wait_for 60 grep -q "listening on" /tmp/ss.listen
check "ss shows utcpd's listen for the application" 'in_a "$ctl" ss | grep -q "LISTEN(utcpd) .*$UTCP_IP_A:7401"'
kill $lis 2>/dev/null; wait $lis 2>/dev/null

# The application closes first and exits: utcpd inherits the connection in TIME-WAIT.
touch /tmp/ss.go
wait $app
wait $sink
check "the transfer arrived whole" '[ "$(cat /tmp/ss.sink)" = "100000 $(sha256sum < /tmp/ss.data | cut -d" " -f1)" ]'
wait_for 20 grep -q "port [0-9]* closed: TIME-WAIT" /tmp/utcpd.log
out=$(in_a "$ctl" ss)
echo "$out" | sed 's/^/    /'
check "ss shows the inherited connection in TIME-WAIT held by utcpd" \
	'echo "$out" | grep "$UTCP_IP_B:7400" | grep -q "TIME-WAIT(utcpd)"'

stop_utcpd >/dev/null
out=$(in_a "$ctl" ss 2>&1)
check "ss without utcpd says so" 'echo "$out" | grep -qi "utcpd"'
finish
