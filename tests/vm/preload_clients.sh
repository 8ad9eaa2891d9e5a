#!/usr/bin/env bash
# preload_clients: unmodified programs as clients on utcp through LD_PRELOAD=libutcp-preload.so,
# against kernel-TCP servers in namespace B: curl downloading from `python3 -m http.server`
# and uploading (curl -T) to a small upload server (sha256 both), iperf3 -c both ways,
# nc and socat pipes, redis-benchmark against redis-server, a program that forks after
# connecting, and one that waits on a quiet connection (it must sleep, not spin). Each check also proves
# the bytes went through utcp: the module's global tx/rx byte counters moved by at least
# the payload, and the preload layer logged the connection as a utcp one
# (UTCP_PRELOAD_FALLBACK=0: nothing may silently fall back to the kernel's TCP).
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
B=$UTCP_IP_B
preload_start --time-wait-ms 2000
# pre LOG COMMAND...: runs COMMAND in namespace A under the preload layer; its stderr goes to LOG.
pre() {
	local log=$1; shift
	in_a env LD_PRELOAD="$pre" UTCP_PRELOAD_DESTS="$B" UTCP_PRELOAD_FALLBACK=0 UTCP_PRELOAD_DEBUG=1 \
		timeout 120 "$@" 2>"$log"
}
via_utcp() { grep -q "through utcp" "$1"; }

work=$(mktemp -d)
head -c $((8 << 20)) /dev/urandom > "$work/down.bin"
head -c $((4 << 20)) /dev/urandom > "$work/up.bin"
head -c $((1 << 20)) /dev/urandom > "$work/pipe.bin"

# 1. curl GET of 8 MiB from python3 -m http.server
(cd "$work" && exec ip netns exec "$UTCP_NS_B" python3 -m http.server 8000 --bind "$B" >/dev/null 2>&1) &
http=$!
wait_for 120 listening_in "$UTCP_NS_B" 8000
rx0=$(utcp_counter rx_bytes)
pre "$work/curl-get.err" curl -sS -o "$work/got.bin" "http://$B:8000/down.bin"
rc=$?
check "curl downloads 8 MiB from python3 http.server (sha256 equal)" '[ $rc = 0 ] && [ "$(sha "$work/got.bin")" = "$(sha "$work/down.bin")" ]'
check "the download went through utcp (module rx_bytes +8 MiB, preload log)" 'counter_grown rx_bytes $rx0 $((8 << 20)) && via_utcp "$work/curl-get.err"'
kill $http 2>/dev/null; wait $http 2>/dev/null

# 2. curl -T (PUT) of 4 MiB to a small upload server that answers with the sha256
in_b python3 "$UTCP_SRC/tests/preload/upload_server.py" "$B" 8001 "$work/put.bin" 2>"$work/up-srv.err" &
upsrv=$!
wait_for 120 grep -q listening "$work/up-srv.err"
tx0=$(utcp_counter tx_bytes)
reply=$(pre "$work/curl-put.err" curl -sS -T "$work/up.bin" "http://$B:8001/up.bin")
rc=$?
check "curl -T uploads 4 MiB (server's sha256 equal)" '[ $rc = 0 ] && [ "$reply" = "$(sha "$work/up.bin")" ] && [ "$(sha "$work/put.bin")" = "$reply" ]'
check "the upload went through utcp (module tx_bytes +4 MiB, preload log)" 'counter_grown tx_bytes $tx0 $((4 << 20)) && via_utcp "$work/curl-put.err"'
kill $upsrv 2>/dev/null; wait $upsrv 2>/dev/null

# 3. iperf3 client, both directions, against iperf3 -s
in_b iperf3 -s -B "$B" -p 5201 >/dev/null 2>&1 &
ip3=$!
wait_for 60 listening_in "$UTCP_NS_B" 5201
tx0=$(utcp_counter tx_bytes)
pre "$work/iperf-up.err" iperf3 -c "$B" -p 5201 -t 3 --json > "$work/iperf-up.json"
rc=$?
up_bytes=$(iperf3_json "$work/iperf-up.json" bytes)
check "iperf3 -c sends to iperf3 -s (receiver got $up_bytes bytes)" '[ $rc = 0 ] && [ "$up_bytes" -gt 0 ]'
check "iperf3's data went through utcp (module tx_bytes grew by what the server received)" '[ "$up_bytes" -gt 0 ] && counter_grown tx_bytes $tx0 $up_bytes && via_utcp "$work/iperf-up.err"'
[ "$rc" = 0 ] && [ "$up_bytes" -gt 0 ] || { echo "    iperf3 -c exit $rc"; iperf3_explain "$work/iperf-up.json" "$work/iperf-up.err"; }
rx0=$(utcp_counter rx_bytes)
pre "$work/iperf-down.err" iperf3 -c "$B" -p 5201 -t 3 -R --json > "$work/iperf-down.json"
rc=$?
down_bytes=$(iperf3_json "$work/iperf-down.json" bytes)
check "iperf3 -c -R receives from iperf3 -s ($down_bytes bytes)" '[ $rc = 0 ] && [ "$down_bytes" -gt 0 ]'
check "the reverse test went through utcp (module rx_bytes grew by what the client received)" '[ "$down_bytes" -gt 0 ] && counter_grown rx_bytes $rx0 $down_bytes && via_utcp "$work/iperf-down.err"'
[ "$rc" = 0 ] && [ "$down_bytes" -gt 0 ] || { echo "    iperf3 -c -R exit $rc"; iperf3_explain "$work/iperf-down.json" "$work/iperf-down.err"; }
# For scale: the same test from a kernel iperf3 -c, same link, same run.
in_a timeout 120 iperf3 -c "$B" -p 5201 -t 3 --json > "$work/iperf-kernel.json" 2>/dev/null
echo "    iperf3 -c under the layer -> kernel iperf3 -s: $(mbit "$(iperf3_json "$work/iperf-up.json" bits_per_second)") Mbit/s"
echo "    iperf3 -c -R under the layer <- kernel iperf3 -s: $(mbit "$(iperf3_json "$work/iperf-down.json" bits_per_second)") Mbit/s"
echo "    iperf3 -c on the kernel -> kernel iperf3 -s: $(mbit "$(iperf3_json "$work/iperf-kernel.json" bits_per_second)") Mbit/s"
kill $ip3 2>/dev/null; wait $ip3 2>/dev/null

# 4. nc and socat pipes to and from kernel peers
# (kernel peers: socat, not python, whose start-up takes long in a TCG guest)
in_b timeout 120 socat -u "TCP4-LISTEN:7301,bind=$B,reuseaddr" "CREATE:$work/nc.sink" 2>"$work/nc.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_B" 7301
pre "$work/nc-pre.err" nc -N "$B" 7301 < "$work/pipe.bin"
rc=$?
wait $p
check "nc -N pipes 1 MiB to a kernel peer (sha256 equal)" '[ $rc = 0 ] && [ "$(sha "$work/nc.sink")" = "$(sha "$work/pipe.bin")" ] && via_utcp "$work/nc-pre.err"'
in_b timeout 120 socat -u "FILE:$work/pipe.bin" "TCP4-LISTEN:7302,bind=$B,reuseaddr" 2>"$work/socat.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_B" 7302
pre "$work/socat-pre.err" socat -u "TCP:$B:7302" "CREATE:$work/socat.out"
rc=$?
wait $p
check "socat reads 1 MiB from a kernel peer (sha256 equal)" '[ $rc = 0 ] && [ "$(sha "$work/socat.out")" = "$(sha "$work/pipe.bin")" ] && via_utcp "$work/socat-pre.err"'
in_b timeout 120 socat "TCP4-LISTEN:7303,bind=$B,reuseaddr" PIPE 2>"$work/echo.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_B" 7303
pre "$work/socat2-pre.err" socat -b 65536 -t 5 - "TCP:$B:7303" < "$work/pipe.bin" > "$work/socat-echo.out"
rc=$?
wait $p
check "socat round trip through an echo peer, both directions in one connection (sha256 equal)" '[ $rc = 0 ] && [ "$(sha "$work/socat-echo.out")" = "$(sha "$work/pipe.bin")" ] && via_utcp "$work/socat2-pre.err"'

# 5. redis-benchmark under the layer (4 connections at once, non-blocking connects, epoll)
# against a kernel redis-server
in_b redis-server "${redis_server_args[@]}" --bind "$B" --dir "$work" > "$work/redis-srv.out" 2>&1 &
rds=$!
wait_for 60 listening_in "$UTCP_NS_B" 6379
tx0=$(utcp_counter tx_bytes)
redis_bench "redis-benchmark (utcp) -> redis-server (kernel)" "$B" "$work/bench.out" \
	'! grep -qvi "through utcp" "$work/bench-pre.err"' \
	'[ "$(grep -c "through utcp" "$work/bench-pre.err")" -ge 4 ] && counter_grown tx_bytes $tx0 $((2000 * 20))' \
	pre "$work/bench-pre.err"
kill $rds 2>/dev/null; wait $rds 2>/dev/null

# 6. a program that forks after connecting: the child carries on after the parent closes
in_b timeout 120 socat "TCP4-LISTEN:7304,bind=$B,reuseaddr" PIPE 2>"$work/fork.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_B" 7304
out=$(pre "$work/fork-pre.err" "$UTCP_BUILD/tests/preload/preload_fork_client" "$B" 7304)
rc=$?
wait $p
check "fork after connect: the parent, then the child echo through one utcp connection" '[ $rc = 0 ] && [ "$out" = "fork-client: OK (parent 128 KiB, child 256 KiB after fork)" ] && via_utcp "$work/fork-pre.err"'
[ $rc = 0 ] || cat "$work/fork-pre.err"
grep -q "took over the connection" "$work/fork-pre.err"
check "the child took the connection over from the parent (hand-over through shared memory)" '[ $? = 0 ]'

# 7. a program waiting on a quiet connection sleeps: 3 s in a blocking recv (SO_RCVTIMEO)
# and 3 s in select; then its echo comes back. (The layer's helper thread once spun while a
# program thread slept in a blocking call — about one CPU for the whole wait — and could
# take in the frame a sleeping select waited for, leaving it asleep with the data buffered.)
in_b timeout 120 socat "TCP4-LISTEN:7306,bind=$B,reuseaddr" PIPE 2>"$work/idle-echo.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_B" 7306
idle=$(pre "$work/idle.err" python3 "$UTCP_SRC/tests/preload/idle_client.py" "$B" 7306 3)
rc=$?
kill $p 2>/dev/null; wait $p 2>/dev/null
cpu=$(sed -n 's/^cpu \([0-9.]*\) .*/\1/p' <<<"$idle")
check "a program blocked 6 s in recv and select on a quiet utcp connection sleeps (CPU ${cpu:-?} s, < 1.5), then gets its echo" \
	'[ $rc = 0 ] && [ -n "$cpu" ] && awk -v c="$cpu" "BEGIN { exit !(c < 1.5) }" && grep -q "reply ping$" <<<"$idle"'
[ $rc = 0 ] || echo "    idle_client: exit $rc: $idle"

# 8. without utcpd and UTCP_PRELOAD_FALLBACK=0 the connect fails with a message
stop_utcpd >/dev/null
in_b timeout 120 socat -u "TCP4-LISTEN:7305,bind=$B,reuseaddr,fork" /dev/null 2>"$work/nf.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_B" 7305
pre "$work/nofb.err" nc -N "$B" 7305 < /dev/null
rc=$?
check "no utcpd, UTCP_PRELOAD_FALLBACK=0: nc fails, stderr says utcpd is not running" '[ $rc != 0 ] && grep -q "utcpd not running" "$work/nofb.err"'
in_a env LD_PRELOAD="$pre" UTCP_PRELOAD_DESTS="$B" UTCP_PRELOAD_FALLBACK=1 timeout 60 nc -N "$B" 7305 < "$work/pipe.bin" 2>"$work/fb.err"
rc=$?
kill $p 2>/dev/null; wait $p 2>/dev/null
check "no utcpd, UTCP_PRELOAD_FALLBACK=1: nc falls back to the kernel's TCP" '[ $rc = 0 ] && grep -q "using the kernel" "$work/fb.err"'

wait_for 30 no_live_endpoints
check "every endpoint is released afterwards" '[ "$(live_endpoints)" = 0 ]'
show_logs "$work" "through utcp\|took over\|not running\|using the kernel"
rm -rf "$work"
finish
