#!/usr/bin/env bash
# preload_servers: unmodified programs as servers on utcp through LD_PRELOAD=libutcp-preload.so
# (UTCP_PRELOAD_LISTEN): utcpd listens, runs the handshakes and hands each connection over
# (paper §3.4), against kernel-TCP clients in namespace B: iperf3 -s with iperf3 -c both
# ways (-R too; iperf3 closes and reopens its listener for every test), python3 -m
# http.server serving 8 MiB to curl, nc -l and socat TCP-LISTEN receiving 2 MiB, socat
# sending 2 MiB (sha256 all). Each check also proves the bytes went through utcp: the
# module's global byte counters moved by at least the payload, and the layer logged the
# listen and the accepted connection as utcp ones (UTCP_PRELOAD_FALLBACK=0: nothing may
# silently stay on the kernel's TCP). For scale, iperf3 -s without the layer, same client.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
pre=$(readlink -f "$UTCP_BUILD")/libutcp/src/preload/libutcp-preload.so  # absolute: programs may chdir
utcpctl=$UTCP_BUILD/tools/utcpctl
probe=$UTCP_BUILD/tests/registry/registry_probe
A=$UTCP_IP_A
export UTCP_REGISTRY=/run/utcp/utcpd.sock
[ -f "$pre" ] || { echo "FAIL: libutcp-preload.so built"; exit 1; }
start_utcpd --time-wait-ms 2000 -v >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
counter() { in_a "$utcpctl" stats | awk -v k="$1" '$1 == k { print $2 }'; }  # the module's global counter $1
grown() {  # grown NAME BEFORE MIN: counter NAME grew by at least MIN since BEFORE
	[ $(( $(counter "$1") - $2 )) -ge "$3" ]
}
sha() { sha256sum < "$1" | cut -d' ' -f1; }
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
listening() { in_a ss -ltnH "sport = :$1" | grep -q .; }  # a kernel socket listens on port $1 in A

head -c $((8 << 20)) /dev/urandom > "$work/down.bin"
head -c $((2 << 20)) /dev/urandom > "$work/pipe.bin"

# 1. iperf3 -s under the layer; kernel iperf3 -c, then -c -R (a new listen per test)
srv "$work/iperf.err" 5201 iperf3 -s -4 -p 5201 < /dev/null > "$work/iperf-srv.out"
check "iperf3 -s listens through utcp" '[ $? = 0 ]'
ip3=$srv_pid
rx0=$(counter rx_bytes)
in_b timeout 120 iperf3 -c "$A" -p 5201 -t 3 --json > "$work/iperf-up.json" 2>"$work/iperf-up.cerr"
rc=$?
up_bytes=$(python3 -c "import json; print(json.load(open('$work/iperf-up.json'))['end']['sum_received']['bytes'])" 2>/dev/null || echo 0)
check "kernel iperf3 -c sends to iperf3 -s on utcp (server got $up_bytes bytes)" '[ $rc = 0 ] && [ "$up_bytes" -gt 0 ]'
check "those bytes went through utcp (module rx_bytes grew by them, accepted through utcp)" '[ "$up_bytes" -gt 0 ] && grown rx_bytes $rx0 $up_bytes && accepted "$work/iperf.err"'
tx0=$(counter tx_bytes)
in_b timeout 120 iperf3 -c "$A" -p 5201 -t 3 -R --json > "$work/iperf-down.json" 2>"$work/iperf-down.cerr"
rc=$?
down_bytes=$(python3 -c "import json; print(json.load(open('$work/iperf-down.json'))['end']['sum_received']['bytes'])" 2>/dev/null || echo 0)
check "kernel iperf3 -c -R receives from iperf3 -s on utcp ($down_bytes bytes; the server listened again)" '[ $rc = 0 ] && [ "$down_bytes" -gt 0 ]'
check "the reverse test went through utcp (module tx_bytes grew by what the client received, a second listen)" '[ "$down_bytes" -gt 0 ] && grown tx_bytes $tx0 $down_bytes && [ "$(grep -c "listening on .* through utcp" "$work/iperf.err")" -ge 2 ]'
kill $ip3 2>/dev/null; wait $ip3 2>/dev/null
# For scale: the same client against iperf3 -s on the kernel's TCP, same link, same run.
in_a iperf3 -s -4 -p 5202 -1 > /dev/null 2>&1 &
k3=$!
wait_for 60 listening 5202
in_b timeout 120 iperf3 -c "$A" -p 5202 -t 3 --json > "$work/iperf-kernel.json" 2>/dev/null
wait $k3 2>/dev/null
for j in up down kernel; do
	python3 -c "import json; e=json.load(open('$work/iperf-$j.json'))['end']; print('    iperf3 %s: %.1f Mbit/s' % ({'up': 'kernel client -> utcp server', 'down': 'utcp server -> kernel client (-R)', 'kernel': 'kernel client -> kernel server'}['$j'], e['sum_received']['bits_per_second']/1e6))" 2>/dev/null
done

# 2. python3 -m http.server under the layer; kernel curl downloads 8 MiB
srv "$work/http.err" 8000 python3 -m http.server 8000 --bind 0.0.0.0 --directory "$work" < /dev/null > /dev/null
check "python3 -m http.server listens through utcp" '[ $? = 0 ]'
http=$srv_pid
tx0=$(counter tx_bytes)
in_b timeout 200 curl -sS -o "$work/got.bin" "http://$A:8000/down.bin" 2>"$work/curl.err"
rc=$?
check "kernel curl downloads 8 MiB from python3 http.server on utcp (sha256 equal)" '[ $rc = 0 ] && [ "$(sha "$work/got.bin")" = "$(sha "$work/down.bin")" ]'
check "the download went through utcp (module tx_bytes +8 MiB, accepted through utcp)" 'grown tx_bytes $tx0 $((8 << 20)) && accepted "$work/http.err"'
[ $rc = 0 ] || { echo "curl exit status $rc, got $(stat -c %s "$work/got.bin" 2>/dev/null || echo 0) bytes"; cat "$work/curl.err"; }
kill $http 2>/dev/null; wait $http 2>/dev/null

# 3. nc -l and socat TCP-LISTEN receiving a file from kernel clients, socat sending one
srv "$work/nc.err" 7301 nc -4 -l 7301 < /dev/null > "$work/nc.out"
p=$srv_pid
rx0=$(counter rx_bytes)
in_b timeout 120 nc -N "$A" 7301 < "$work/pipe.bin"
rc=$?
wait $p
src=$?
check "nc -l on utcp receives 2 MiB from kernel nc -N (sha256 equal)" '[ $rc = 0 ] && [ $src = 0 ] && [ "$(sha "$work/nc.out")" = "$(sha "$work/pipe.bin")" ]'
check "nc's bytes went through utcp (module rx_bytes +2 MiB, accepted through utcp)" 'grown rx_bytes $rx0 $((2 << 20)) && accepted "$work/nc.err"'
srv "$work/socat.err" 7302 socat -u TCP-LISTEN:7302,reuseaddr "CREATE:$work/socat.out" < /dev/null
p=$srv_pid
rx0=$(counter rx_bytes)
in_b timeout 120 socat -u "FILE:$work/pipe.bin" "TCP:$A:7302"
rc=$?
wait $p
src=$?
check "socat TCP-LISTEN on utcp receives 2 MiB from kernel socat (sha256 equal)" '[ $rc = 0 ] && [ $src = 0 ] && [ "$(sha "$work/socat.out")" = "$(sha "$work/pipe.bin")" ]'
check "socat's bytes went through utcp (module rx_bytes +2 MiB, accepted through utcp)" 'grown rx_bytes $rx0 $((2 << 20)) && accepted "$work/socat.err"'
srv "$work/socat2.err" 7303 socat -u "FILE:$work/pipe.bin" TCP-LISTEN:7303,reuseaddr < /dev/null
p=$srv_pid
tx0=$(counter tx_bytes)
in_b timeout 120 socat -u "TCP:$A:7303" "CREATE:$work/socat2.out"
rc=$?
wait $p
src=$?
check "socat TCP-LISTEN on utcp sends 2 MiB to kernel socat (sha256 equal)" '[ $rc = 0 ] && [ $src = 0 ] && [ "$(sha "$work/socat2.out")" = "$(sha "$work/pipe.bin")" ]'
check "that went through utcp (module tx_bytes +2 MiB, accepted through utcp)" 'grown tx_bytes $tx0 $((2 << 20)) && accepted "$work/socat2.err"'

# 4. a port not in UTCP_PRELOAD_LISTEN stays on the kernel's TCP, untouched
in_a env LD_PRELOAD="$pre" UTCP_PRELOAD_LISTEN=7301 UTCP_PRELOAD_DESTS=none UTCP_PRELOAD_FALLBACK=0 UTCP_PRELOAD_DEBUG=1 \
	timeout 120 nc -4 -l 7304 < /dev/null > "$work/knc.out" 2>"$work/knc.err" &
p=$!
wait_for 60 listening 7304
in_b timeout 60 nc -N "$A" 7304 < "$work/pipe.bin"
rc=$?
wait $p
check "a listen on a port not chosen stays on the kernel's TCP (sha256 equal, nothing logged)" '[ $rc = 0 ] && [ "$(sha "$work/knc.out")" = "$(sha "$work/pipe.bin")" ] && ! grep -q "through utcp" "$work/knc.err"'

wait_for 30 test "$(in_a "$probe" live-endpoints)" = 0
check "every endpoint is released afterwards" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'
for f in "$work"/*.err; do
	if grep -qv "through utcp\|closed the listen" "$f" 2>/dev/null; then
		echo "--- $(basename "$f")"; head -n 8 "$f"
	fi
done
rm -rf "$work"
finish
