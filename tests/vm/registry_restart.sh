#!/usr/bin/env bash
# registry_restart: restarting utcpd does not break established connections (issue 6
# item 6). utcpd's attachment is persistent, so kill -9 parks it in the module with its
# classifier and endpoints; the next utcpd adopts it, reopens every endpoint, logs what
# it recovered and inherits each connection when its application lets go. Checked: a
# transfer to a kernel sink survives kill -9 + restart with the sha256 equal, the
# connection is inherited (TIME-WAIT) after the application exits, the module's endpoint
# count returns to 0, a new connection works, and a restart with nothing live is clean.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
utcpctl=$UTCP_BUILD/tools/utcpctl
export UTCP_REGISTRY=/run/utcp/utcpd.sock
parked() { in_a "$utcpctl" stats | sed -n 's/^parked_controls[ :]*//p'; }
# start_utcpd, then wait until this utcpd (not a dead one's leftover socket) serves.
# fd 3 (the application's stdin pipe) must not leak into utcpd, or the pipe never ends.
restart_utcpd() {
	# The dead one's log would look like the new one's (start_utcpd removes its socket):
	# the socket comes only after adopting and recovering.
	rm -f /tmp/utcpd.log
	start_utcpd "$@" 3>&- >/dev/null  # its own wait (5 s) may be short for a slow guest
	wait_for 120 test -S "$UTCP_REGISTRY" && wait_for 120 grep -q "listening on" /tmp/utcpd.log
}
holders() {  # why a connection was not inherited: utcpd's view, and who holds endpoint files
	grep -E "endpoint [0-9]+: .*references|exited|released" /tmp/utcpd.log | sed 's/^/    /'
	local p
	for p in /proc/[0-9]*; do
		local n m
		n=$(ls -l "$p/fd" 2>/dev/null | grep -c "utcp-endpoint")
		m=$(grep -c "utcp-endpoint" "$p/maps" 2>/dev/null)
		[ "${n:-0}" = 0 ] && [ "${m:-0}" = 0 ] ||
			echo "    pid ${p#/proc/} ($(cat "$p/comm")): $n endpoint fds, $m endpoint mappings"
	done
}
kill9_utcpd() {
	kill -9 "$UTCPD_PID"
	wait "$UTCPD_PID" 2>/dev/null
	cat /tmp/utcpd.log >> /tmp/utcpd.all.log
}
to_kernel() {  # NAME FILE PORT: a fresh connection after a restart
	in_b python3 "$peer" sink "$UTCP_IP_B" "$3" > /tmp/sink2.out 2>/tmp/sink2.err &
	local p=$!
	wait_for 30 grep -q listening /tmp/sink2.err
	in_a timeout 120 "$xfer" connect "$UTCP_IP_B" "$3" < "$2" > /dev/null 2>/tmp/xfer2.err
	local rc=$?
	wait $p
	local want
	want="$(stat -c %s "$2") $(sha256sum < "$2" | cut -d' ' -f1)"
	check "$1" '[ "$rc" = 0 ] && [ "$(cat /tmp/sink2.out)" = "$want" ]'
}
: > /tmp/utcpd.all.log

start_utcpd --time-wait-ms 3000 -v >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
first=$UTCPD_PID
check "a fresh utcpd attaches (nothing parked to adopt)" '! grep -q "adopted the attachment" /tmp/utcpd.log'

# --- a transfer to a kernel sink; kill -9 utcpd while it runs; start it again
head -c $((8 << 20)) /dev/urandom > /tmp/8m
want="$(stat -c %s /tmp/8m) $(sha256sum < /tmp/8m | cut -d' ' -f1)"
in_b python3 "$peer" sink "$UTCP_IP_B" 7201 > /tmp/sink.out 2>/tmp/sink.err &
sink=$!
wait_for 30 grep -q listening /tmp/sink.err
rm -f /tmp/xfer.in
mkfifo /tmp/xfer.in
ip netns exec "$UTCP_NS_A" timeout 300 "$xfer" connect "$UTCP_IP_B" 7201 < /tmp/xfer.in > /dev/null 2>/tmp/xfer.err &
x=$!
exec 3>/tmp/xfer.in
# The first 2 MiB: when this returns the application has read them and is sending.
head -c $((2 << 20)) /tmp/8m >&3
# The other 6 MiB keep coming while utcpd dies and restarts.
tail -c +$(( (2 << 20) + 1 )) /tmp/8m >&3 &
writer=$!
echo "    [$SECONDS s] kill -9 utcpd (pid $first) mid-transfer"
kill9_utcpd
check "after kill -9 the module holds the attachment parked" '[ "$(parked)" = 1 ]'
check "the connection's endpoint is still live in the module" '[ "$(live_endpoints)" = 1 ]'
restart_utcpd --time-wait-ms 3000 -v || { echo "FAIL: utcpd restarts"; cat /tmp/utcpd.log; exit 1; }
echo "    [$SECONDS s] utcpd restarted (pid $UTCPD_PID)"
grep -E "adopted|recovered" /tmp/utcpd.log | sed 's/^/    /'
check "the restarted utcpd adopted the parked attachment" 'grep -q "adopted the attachment a previous utcpd left on $UTCP_IF_A" /tmp/utcpd.log'
check "the restarted utcpd logged the recovered connection" 'grep -q "recovered endpoint [0-9]*: connection $UTCP_IP_A:[0-9]* -> $UTCP_IP_B:7201" /tmp/utcpd.log'
check "nothing is parked while the new utcpd runs" '[ "$(parked)" = 0 ]'
wait $writer
exec 3>&-
wait $x
rc=$?
wait $sink
echo "    [$SECONDS s] transfer over: $(cat /tmp/sink.out | cut -c1-30)..."
check "the transfer survived the restart: exit 0, every byte at the sink, sha256 equal" '[ "$rc" = 0 ] && [ "$(cat /tmp/sink.out)" = "$want" ]'
[ "$rc" = 0 ] || cat /tmp/xfer.err

# --- the application is gone: the restarted utcpd inherits its connection
wait_for 10 grep -q "closed: TIME-WAIT held by utcpd" /tmp/utcpd.log
inherited=$?
check "after the application exits, the restarted utcpd inherits its connection (TIME-WAIT)" '[ "$inherited" = 0 ]'
[ "$inherited" = 0 ] || holders
wait_for 30 no_live_endpoints
check "after TIME-WAIT the module's live endpoint count returns to 0" '[ "$(live_endpoints)" = 0 ]'

# --- a new connection through the restarted utcpd
head -c $((256 << 10)) /dev/urandom > /tmp/256k
to_kernel "a new connection after the restart: 256 KiB, sha256 equal" /tmp/256k 7202
wait_for 30 no_live_endpoints

# --- a second restart with nothing live
kill9_utcpd
restart_utcpd --time-wait-ms 3000 -v || { echo "FAIL: utcpd restarts again"; cat /tmp/utcpd.log; exit 1; }
check "second restart: adopted with no endpoints" 'grep -q "adopted the attachment .*: 0 endpoints" /tmp/utcpd.log'
check "second restart: nothing recovered, no stale classifier entries" 'grep -q "recovered 0 connections and 0 listeners from the previous utcpd; 0 stale" /tmp/utcpd.log'
check "second restart: no errors logged" '! grep -q "utcpd: error" /tmp/utcpd.log'
to_kernel "second restart: a new connection works (256 KiB, sha256 equal)" /tmp/256k 7203
wait_for 30 no_live_endpoints
check "second restart: no endpoint left" '[ "$(live_endpoints)" = 0 ]'

# --- --no-recover drops what was parked and attaches afresh
kill9_utcpd
restart_utcpd --no-recover -v || { echo "FAIL: utcpd --no-recover starts"; cat /tmp/utcpd.log; exit 1; }
check "--no-recover: the parked attachment is dropped, utcpd attaches afresh" 'grep -q "no-recover: dropped" /tmp/utcpd.log && ! grep -q "adopted the attachment" /tmp/utcpd.log && [ "$(parked)" = 0 ]'
check "utcpd is still running" 'kill -0 "$UTCPD_PID"'
stop_utcpd >/dev/null
finish
