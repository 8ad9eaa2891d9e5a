#!/usr/bin/env bash
# preload_servers: unmodified programs as servers on utcp through LD_PRELOAD=libutcp-preload.so
# (UTCP_PRELOAD_LISTEN): utcpd listens, runs the handshakes and hands each connection over
# (paper §3.4), against kernel-TCP clients in namespace B: iperf3 -s with iperf3 -c both
# ways (-R too; iperf3 closes and reopens its listener for every test), python3 -m
# http.server serving 8 MiB to curl, nc -l and socat TCP-LISTEN receiving 2 MiB, socat and
# a python server with sendfile(2) sending 2 MiB (sha256 all), redis-server with kernel redis-benchmark, and a server that
# listens again on its port with SO_REUSEADDR while utcpd holds it for a TIME-WAIT. Each
# check also proves the bytes went through utcp: the module's global byte counters moved
# by at least the payload, and the layer logged the listen and the accepted connection as
# utcp ones (UTCP_PRELOAD_FALLBACK=0: nothing may silently stay on the kernel's TCP). For
# scale, iperf3 -s without the layer, same client.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
A=$UTCP_IP_A
preload_start --time-wait-ms 30000  # TIME-WAIT 30 s: section 5 listens again while one is under way
work=$(mktemp -d)
# srv LOG PORTS COMMAND...: starts COMMAND in namespace A under the preload layer, in the
# background (pid in $srv_pid), listens on PORTS through utcp; its stderr goes to LOG.
# Waits for the layer's "listening" line. stdin is the caller's (<&0), stdout too.
srv() {
	local log=$1 ports=$2; shift 2
	rm -f "$log"
	# Not through in_a: $! must be the command (ip netns exec execs it).
	ip netns exec "$UTCP_NS_A" env LD_PRELOAD="$pre" UTCP_PRELOAD_LISTEN="$ports" UTCP_PRELOAD_DESTS=none \
		UTCP_PRELOAD_FALLBACK=0 UTCP_PRELOAD_DEBUG=1 timeout 300 "$@" <&0 2>"$log" &
	srv_pid=$!
	wait_for 120 grep -q "through utcp" "$log" && return 0
	echo "--- $log"; cat "$log"
	return 1
}
accepted() { grep -q "accepted .* through utcp" "$1"; }

head -c $((8 << 20)) /dev/urandom > "$work/down.bin"
head -c $((2 << 20)) /dev/urandom > "$work/pipe.bin"

# 1. iperf3 -s under the layer; kernel iperf3 -c, then -c -R (a new listen per test)
srv "$work/iperf.err" 5201 iperf3 -s -4 -p 5201 < /dev/null > "$work/iperf-srv.out"
check "iperf3 -s listens through utcp" '[ $? = 0 ]'
ip3=$srv_pid
rx0=$(utcp_counter rx_bytes)
in_b timeout 120 iperf3 -c "$A" -p 5201 -t 3 --json > "$work/iperf-up.json" 2>"$work/iperf-up.cerr"
rc=$?
up_bytes=$(iperf3_json "$work/iperf-up.json" bytes)
check "kernel iperf3 -c sends to iperf3 -s on utcp (server got $up_bytes bytes)" '[ $rc = 0 ] && [ "$up_bytes" -gt 0 ]'
check "those bytes went through utcp (module rx_bytes grew by them, accepted through utcp)" '[ "$up_bytes" -gt 0 ] && counter_grown rx_bytes $rx0 $up_bytes && accepted "$work/iperf.err"'
tx0=$(utcp_counter tx_bytes)
in_b timeout 120 iperf3 -c "$A" -p 5201 -t 3 -R --json > "$work/iperf-down.json" 2>"$work/iperf-down.cerr"
rc=$?
down_bytes=$(iperf3_json "$work/iperf-down.json" bytes)
check "kernel iperf3 -c -R receives from iperf3 -s on utcp ($down_bytes bytes; the server listened again)" '[ $rc = 0 ] && [ "$down_bytes" -gt 0 ]'
check "the reverse test went through utcp (module tx_bytes grew by what the client received, a second listen)" '[ "$down_bytes" -gt 0 ] && counter_grown tx_bytes $tx0 $down_bytes && [ "$(grep -c "listening on .* through utcp" "$work/iperf.err")" -ge 2 ]'
kill $ip3 2>/dev/null; wait $ip3 2>/dev/null
# For scale: the same client against iperf3 -s on the kernel's TCP, same link, same run.
in_a iperf3 -s -4 -p 5202 -1 > /dev/null 2>&1 &
k3=$!
wait_for 60 listening_in "$UTCP_NS_A" 5202
in_b timeout 120 iperf3 -c "$A" -p 5202 -t 3 --json > "$work/iperf-kernel.json" 2>/dev/null
wait $k3 2>/dev/null
echo "    iperf3: kernel client -> utcp server: $(mbit "$(iperf3_json "$work/iperf-up.json" bits_per_second)") Mbit/s"
echo "    iperf3: utcp server -> kernel client (-R): $(mbit "$(iperf3_json "$work/iperf-down.json" bits_per_second)") Mbit/s"
echo "    iperf3: kernel client -> kernel server: $(mbit "$(iperf3_json "$work/iperf-kernel.json" bits_per_second)") Mbit/s"

# 2. python3 -m http.server under the layer; kernel curl downloads 8 MiB at 2 MB/s, so that
# python's blocking sendall meets a full send buffer (8 MiB > the kernel's 6 MiB receive
# buffer at most + utcp's 1 MiB send buffer) and must take the window updates in to go on
srv "$work/http.err" 8000 python3 -m http.server 8000 --bind 0.0.0.0 --directory "$work" < /dev/null > /dev/null
check "python3 -m http.server listens through utcp" '[ $? = 0 ]'
http=$srv_pid
tx0=$(utcp_counter tx_bytes)
in_b timeout 200 curl -sS --limit-rate 2M -o "$work/got.bin" "http://$A:8000/down.bin" 2>"$work/curl.err"
rc=$?
check "kernel curl downloads 8 MiB from python3 http.server on utcp (sha256 equal)" '[ $rc = 0 ] && [ "$(sha "$work/got.bin")" = "$(sha "$work/down.bin")" ]'
check "the download went through utcp (module tx_bytes +8 MiB, accepted through utcp)" 'counter_grown tx_bytes $tx0 $((8 << 20)) && accepted "$work/http.err"'
if [ $rc != 0 ]; then  # where the server's threads wait: the layer's frames tell
	echo "curl exit status $rc, got $(stat -c %s "$work/got.bin" 2>/dev/null || echo 0) bytes"; cat "$work/curl.err"
	command -v gdb >/dev/null && timeout 120 gdb -p "$(pgrep -f "^python3 -m http.server 8000" | head -n 1)" -batch \
		-ex 'thread apply all bt 12' 2>&1 | grep -E "^#|^Thread" | head -n 60
fi
kill $http 2>/dev/null; wait $http 2>/dev/null

# 3. nc -l and socat TCP-LISTEN receiving a file from kernel clients; socat, and a python
# server with sendfile(2) (with and without an offset: tests/preload/sendfile_server.py),
# sending one
# transfer DIR NAME PORT OUT SERVER...: SERVER on utcp receives 2 MiB from a kernel socat
# client and writes them to OUT (DIR=in), or sends 2 MiB to one, which writes OUT (DIR=out).
# SERVER's stderr goes to $work/KEY.err, its stdout to $work/KEY.stdout (KEY: NAME with _
# for blanks, -DIR).
transfer() {
	local dir=$1 name=$2 port=$3 out=$4 key=${2// /_}-$1 p rc src c0 counter=rx_bytes what="receives 2 MiB from"
	shift 4
	[ "$dir" = out ] && counter=tx_bytes what="sends 2 MiB to"
	srv "$work/$key.err" "$port" "$@" < /dev/null > "$work/$key.stdout"
	p=$srv_pid
	c0=$(utcp_counter $counter)
	if [ "$dir" = in ]; then
		in_b timeout 120 socat -u "FILE:$work/pipe.bin" "TCP:$A:$port"
	else
		in_b timeout 120 socat -u "TCP:$A:$port" "CREATE:$out"
	fi
	rc=$?
	wait $p
	src=$?
	check "$name on utcp $what kernel socat (sha256 equal)" '[ $rc = 0 ] && [ $src = 0 ] && [ "$(sha "$out")" = "$(sha "$work/pipe.bin")" ]'
	check "$name: the bytes went through utcp (module $counter +2 MiB, accepted through utcp)" 'counter_grown $counter $c0 $((2 << 20)) && accepted "$work/$key.err"'
}
transfer in "nc -l" 7301 "$work/nc_-l-in.stdout" nc -4 -l 7301
transfer in "socat TCP-LISTEN" 7302 "$work/socat-in.out" socat -u TCP-LISTEN:7302,reuseaddr "CREATE:$work/socat-in.out"
transfer out "socat TCP-LISTEN" 7303 "$work/socat-out.got" socat -u "FILE:$work/pipe.bin" TCP-LISTEN:7303,reuseaddr
transfer out "python sendfile" 7306 "$work/sendfile.got" python3 "$UTCP_SRC/tests/preload/sendfile_server.py" 7306 "$work/pipe.bin"

# 4. redis-server on utcp, kernel redis-benchmark (4 clients at once, SET and GET)
srv "$work/redis.err" 6379 redis-server "${redis_server_args[@]}" --bind 0.0.0.0 --dir "$work" < /dev/null > "$work/redis.out"
check "redis-server listens through utcp" '[ $? = 0 ]'
rds=$srv_pid
rx0=$(utcp_counter rx_bytes)
tx0=$(utcp_counter tx_bytes)
redis_bench "redis-benchmark (kernel) -> redis-server (utcp)" "$A" "$work/bench.out" true \
	'[ "$(grep -c "accepted .* through utcp" "$work/redis.err")" -ge 4 ] && counter_grown rx_bytes $rx0 $((2000 * 20)) && counter_grown tx_bytes $tx0 $((2000 * 5))' \
	in_b timeout 200
kill $rds 2>/dev/null; wait $rds 2>/dev/null

# 5. SO_REUSEADDR: a server that closes its listener and, once the layer let that listen go
# (after 2 s), listens again on the port while utcpd still holds it for the first
# connection's TIME-WAIT (this side closed first): a plain bind is refused, as in Linux,
# one with SO_REUSEADDR listens (kListenReuseAddr: utcpd shares the port's reservation).
srv "$work/relisten.err" 7305 python3 "$UTCP_SRC/tests/preload/relisten_server.py" 7305 6 < /dev/null > "$work/relisten.out"
p=$srv_pid
one=$(in_b timeout 60 socat -u "TCP:$A:7305" STDOUT)
listened_twice() { [ "$(grep -c "listening on .* through utcp" "$work/relisten.err")" -ge 2 ]; }
wait_for 120 listened_twice
two=$(in_b timeout 60 socat -u "TCP:$A:7305" STDOUT)
wait $p
src=$?
cat "$work/relisten.out" | sed 's/^/    relisten_server: /'
check "while utcpd holds the port for a TIME-WAIT, a bind without SO_REUSEADDR is refused (EADDRINUSE)" \
	'grep -q "^plain bind: EADDRINUSE" "$work/relisten.out"'
check "with SO_REUSEADDR the server listens on the port again through utcp and serves the next client" \
	'[ $src = 0 ] && [ "$one" = one ] && [ "$two" = two ] && grep -q "^relisten: ok" "$work/relisten.out" && [ "$(grep -c "listening on .* through utcp" "$work/relisten.err")" = 2 ] && ! grep -q "the one closed before" "$work/relisten.err"'

# 6. a port not in UTCP_PRELOAD_LISTEN stays on the kernel's TCP, untouched
in_a env LD_PRELOAD="$pre" UTCP_PRELOAD_LISTEN=7301 UTCP_PRELOAD_DESTS=none UTCP_PRELOAD_FALLBACK=0 UTCP_PRELOAD_DEBUG=1 \
	timeout 120 nc -4 -l 7304 < /dev/null > "$work/knc.out" 2>"$work/knc.err" &
p=$!
wait_for 60 listening_in "$UTCP_NS_A" 7304
in_b timeout 60 nc -N "$A" 7304 < "$work/pipe.bin"
rc=$?
wait $p
check "a listen on a port not chosen stays on the kernel's TCP (sha256 equal, nothing logged)" '[ $rc = 0 ] && [ "$(sha "$work/knc.out")" = "$(sha "$work/pipe.bin")" ] && ! grep -q "through utcp" "$work/knc.err"'

wait_for 90 no_live_endpoints  # the TIME-WAITs (30 s) end
check "every endpoint is released afterwards" '[ "$(live_endpoints)" = 0 ]'
show_logs "$work" "through utcp\|closed the listen"
stop_utcpd >/dev/null  # it holds the module
rm -rf "$work"
finish
