#!/usr/bin/env bash
# kmod_utcpctl.sh - utcpctl drives every control path: two processes, one per namespace,
# exchange frames through their endpoints; stats and ring-dump report it.
set -u
. "$(dirname "$0")/kmod_common.inc"
need "$utcpctl"
need_classifier
ns_a=${UTCP_NS_A:-utcp-a} ns_b=${UTCP_NS_B:-utcp-b}
out_b=/tmp/kmod_utcpctl_b.$$ out_a=/tmp/kmod_utcpctl_a.$$
rc=0
# A capture of the flow on B's interface, started (and its socket bound) before any frame.
pcap_file=/tmp/kmod_utcpctl.$$.pcap pcap_out=/tmp/kmod_utcpctl_pcap.$$
mkfifo "$pcap_out"
ip netns exec "$ns_b" "$utcpctl" pcap ${UTCP_IF_B:-vb} "$pcap_file" --local $UTCP_IP_B:6000 --count 3 --timeout-ms 60000 >"$pcap_out" 2>&1 &
pcap_pid=$!
exec 3<"$pcap_out"
read -r pcap_ready <&3
ip netns exec "$ns_b" "$utcpctl" run - >"$out_b" 2>&1 <<EOF_B &
attach ${UTCP_IF_B:-vb}
load-classifier $classifier
endpoint-create rx --mac $UTCP_MAC_B --proto udp --local $UTCP_IP_B:6000 --listener
flow-add rx
recv-raw rx 3 --timeout-ms 20000
stats rx --json
ring-dump rx
stats
EOF_B
b=$!
sleep 2
ip netns exec "$ns_a" "$utcpctl" run - >"$out_a" 2>&1 <<EOF_A
attach ${UTCP_IF_A:-va}
endpoint-create tx --mac $UTCP_MAC_A --proto udp --local $UTCP_IP_A:5000 --remote $UTCP_IP_B:6000
send-raw tx --dst-mac $UTCP_MAC_B --payload hello-from-utcpctl --count 3
rate-set tx 100 100
send-raw tx --dst-mac $UTCP_MAC_B --payload over-budget --count 2
EOF_A
a_rc=$?
wait $b; b_rc=$?
grep -q 'sent 3 refused 0' "$out_a" && echo "PASS: utcpctl_send_raw" || { echo "FAIL: utcpctl_send_raw $(tr '\n' '|' <"$out_a")"; rc=1; }
# Two 60-byte frames against a 100-byte bucket: one leaves, one waits (exit 0, pending 1).
[ $a_rc = 0 ] && grep -q 'sent 1 refused 0 pending 1' "$out_a" && echo "PASS: utcpctl_rate_limit" || { echo "FAIL: utcpctl_rate_limit rc=$a_rc $(tr '\n' '|' <"$out_a")"; rc=1; }
[ $b_rc = 0 ] && [ "$(grep -c '^frame len' "$out_b")" = 3 ] && grep -q 'received 3 frames' "$out_b" \
	&& echo "PASS: utcpctl_recv_raw" || { echo "FAIL: utcpctl_recv_raw rc=$b_rc $(tr '\n' '|' <"$out_b")"; rc=1; }
# 3 or 4: the over-budget frame that did leave may arrive before the stats are read.
grep -qE '"rx_frames": [34],' "$out_b" && echo "PASS: utcpctl_stats_json" || { echo "FAIL: utcpctl_stats_json"; rc=1; }
grep -q '^classifier_runs' "$out_b" && grep -q '^endpoint rx id' "$out_b" && echo "PASS: utcpctl_stats_ring_dump" || { echo "FAIL: utcpctl_stats_ring_dump"; rc=1; }
# pcap sees the frames the module delivers to the endpoint (taps run before its handler).
wait $pcap_pid; pcap_rc=$?
pcap_summary=$(cat <&3)
n_hello=$(python3 -c "import sys; print(open(sys.argv[1], 'rb').read().count(b'hello-from-utcpctl'))" "$pcap_file" 2>&1)
[ $pcap_rc = 0 ] && [ "$n_hello" = 3 ] && echo "PASS: utcpctl_pcap_endpoint_flow" \
	|| { echo "FAIL: utcpctl_pcap_endpoint_flow rc=$pcap_rc hello=$n_hello $pcap_ready | $pcap_summary"; rc=1; }
# top --json: one object per interval with totals and rates.
top_out=$(ip netns exec "$ns_b" "$utcpctl" top --count 2 --interval-ms 200 --json 2>&1)
echo "$top_out" | python3 -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin]
assert len(rows) == 2 and all("rx_frames_per_s" in r and "live_endpoints" in r for r in rows), rows
assert rows[1]["rx_frames"] >= 3 and rows[1]["time_s"] > rows[0]["time_s"], rows
' && echo "PASS: utcpctl_top_json" || { echo "FAIL: utcpctl_top_json $top_out"; rc=1; }
rm -f "$pcap_file" "$pcap_out"
# Unprivileged: attach is refused with a message that says why.
if command -v setpriv >/dev/null; then
	msg=$(setpriv --reuid 65534 --regid 65534 --clear-groups --inh-caps=-all "$utcpctl" attach lo 2>&1)
	echo "$msg" | grep -q 'CAP_NET_ADMIN' && echo "PASS: utcpctl_unprivileged_message" || { echo "FAIL: utcpctl_unprivileged_message $msg"; rc=1; }
fi
rm -f "$out_a" "$out_b"
exit $rc
