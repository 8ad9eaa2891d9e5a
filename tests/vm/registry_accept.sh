#!/usr/bin/env bash
# registry_accept: passive open through the registry (paper §3.4). utcpd listens for
# utcp-xfer, runs the handshakes with kernel-TCP clients in the other namespace, and
# hands each established connection over with its own endpoint; bytes checked by sha256
# both ways; several connections in sequence; connections nobody accepted are reset when
# the listen closes; a SYN flood from spoofed addresses is answered with SYN cookies while
# a real client still gets in; an Accept for someone else's listen is refused.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
xfer=$UTCP_BUILD/examples/utcp-xfer
probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp/utcpd.sock
# TIME-WAIT short enough that a port a connection closed first comes back within a check.
start_utcpd --time-wait-ms 3000 >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }

# Kernel-TCP clients in namespace B: nc and socat (python starts slowly in a TCG guest;
# it is used only where a socket's fine detail is needed: connect time, RST, raw SYNs).
cat > /tmp/kclient.py <<'EOF'
import socket, sys, time
mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket()
s.settimeout(300)
t0 = time.monotonic()
s.connect((addr, port))
print("connect_ms %.1f" % ((time.monotonic() - t0) * 1000), flush=True)
if mode == "hold":    # connect, say nothing, report how the connection ends
    try:
        b = s.recv(1)
        print("eof" if not b else "data", flush=True)
    except ConnectionResetError:
        print("reset", flush=True)
    except socket.timeout:
        print("timeout", flush=True)
else:                 # "close": connect, then end the stream and wait for the other end
    s.shutdown(socket.SHUT_WR)
    while s.recv(1 << 16):
        pass
s.close()
EOF

port=8000
start_listen() {  # [utcp-xfer listen options...]; stdin and stdout as given by the caller
	port=$((port + 1))
	rm -f /tmp/acc.err
	# <&0: a background job would otherwise read /dev/null, not the caller's stdin.
	ip netns exec "$UTCP_NS_A" timeout 600 "$xfer" listen $port "$@" <&0 2>/tmp/acc.err &
	xfer_pid=$!
	for _ in $(seq 300); do grep -q "listening on" /tmp/acc.err 2>/dev/null && return 0; sleep 0.1; done
	cat /tmp/acc.err
	return 1
}

from_kernel() {  # NAME FILE: kernel client sends FILE to utcp-xfer listen
	start_listen < /dev/null > /tmp/acc.out || { check "$1: listen" false; return; }
	in_b timeout 600 nc -N "$UTCP_IP_A" $port < "$2" > /dev/null 2>/tmp/kc.err
	local krc=$?
	wait $xfer_pid
	local xrc=$?
	local got want
	got=$(sha256sum < /tmp/acc.out | cut -d' ' -f1)
	want=$(sha256sum < "$2" | cut -d' ' -f1)
	check "$1: kernel -> utcp (accepted through utcpd), sha256 equal" '[ $krc = 0 ] && [ $xrc = 0 ] && [ "$got" = "$want" ]'
	[ "$got" = "$want" ] || { echo "krc $krc xrc $xrc"; cat /tmp/acc.err /tmp/kc.err; }
	echo "    $1 kernel -> utcp: sha256 ${got:0:16}…; $(grep -h 'sent\|accepted' /tmp/acc.err | sed 's/^utcp-xfer: //' | tr '\n' ' ')"
}

to_kernel() {  # NAME FILE: utcp-xfer listen sends FILE to a kernel client
	start_listen < "$2" > /dev/null || { check "$1: listen" false; return; }
	local got
	got=$(in_b timeout 600 socat -u TCP:"$UTCP_IP_A":$port STDOUT 2>/tmp/kc.err | sha256sum | cut -d' ' -f1)
	wait $xfer_pid
	local xrc=$?
	local want
	want=$(sha256sum < "$2" | cut -d' ' -f1)
	check "$1: utcp (accepted through utcpd) -> kernel, sha256 equal" '[ $xrc = 0 ] && [ "$got" = "$want" ]'
	[ "$got" = "$want" ] || { echo "want $want got $got xrc $xrc"; cat /tmp/acc.err /tmp/kc.err; }
	echo "    $1 utcp -> kernel: sha256 ${got:0:16}…; $(grep -h 'sent' /tmp/acc.err | sed 's/^utcp-xfer: //')"
}

printf x > /tmp/one
head -c $((1 << 20)) /dev/urandom > /tmp/1m
head -c $((8 << 20)) /dev/urandom > /tmp/8m

# --- an Accept for someone else's listen, while utcp-xfer's listen waits
start_listen < /dev/null > /tmp/acc.out || check "listen starts" false
lid=$(sed -n 's/.*(listen \([0-9]*\)).*/\1/p' /tmp/acc.err)
check "listen reply names a listen id" '[ -n "$lid" ]'
out=$(in_a "$probe" accept "$lid" 2>&1)
check "Accept on another client's listen refused" 'echo "$out" | grep -q "no such listen of yours"'
out=$(in_a "$probe" accept "$lid" --wait 2>&1)
check "waiting Accept on another client's listen refused" 'echo "$out" | grep -q "no such listen of yours"'
out=$(in_a "$probe" accept 4000 2>&1)
check "Accept on an unknown listen id refused" 'echo "$out" | grep -q "no such listen of yours"'
# nc reports at once when the port is taken; the timeout only ends it when it is not
# (in a loaded emulated guest nc took 4 s to report).
out=$(in_a timeout 20 nc -l "$UTCP_IP_A" $port 2>&1 < /dev/null)
check "listening port reserved in the kernel" 'echo "$out" | grep -q "in use"'
in_b timeout 600 nc -N "$UTCP_IP_A" $port < /tmp/one > /dev/null
wait $xfer_pid
check "1 byte accepted after the hostile Accepts" '[ "$(cat /tmp/acc.out)" = x ]'
check "utcp-xfer got the peer's MAC as learnt from its SYN" 'grep -qi "next hop $UTCP_MAC_B" /tmp/acc.err'

# Setup time of a passive open: the kernel client's connect() (SYN to established,
# utcpd answering), and utcp-xfer's handover (Accept reply to imported).
start_listen < /dev/null > /dev/null || check "listen" false
ct=$(in_b timeout 600 python3 /tmp/kclient.py close "$UTCP_IP_A" $port)
wait $xfer_pid
check "connect to a utcp listener completes" 'echo "$ct" | grep -q connect_ms'
echo "    passive open: client ${ct} ; $(grep -h 'imported in' /tmp/acc.err | sed 's/.*imported/imported/')"

from_kernel "1 byte" /tmp/one
to_kernel "1 byte" /tmp/one
from_kernel "1 MiB" /tmp/1m
to_kernel "1 MiB" /tmp/1m
from_kernel "8 MiB" /tmp/8m
to_kernel "8 MiB" /tmp/8m

# --- several connections in sequence on one listen
head -c 100000 /dev/urandom > /tmp/s1
head -c 1 /dev/urandom > /tmp/s2
head -c 300000 /dev/urandom > /tmp/s3
start_listen --count 3 < /dev/null > /tmp/acc.out || check "listen --count 3" false
for f in /tmp/s1 /tmp/s2 /tmp/s3; do in_b timeout 600 nc -N "$UTCP_IP_A" $port < $f > /dev/null; done
wait $xfer_pid
check "3 connections in sequence on one listen, each its own endpoint" \
	'[ "$(cat /tmp/s1 /tmp/s2 /tmp/s3 | sha256sum)" = "$(sha256sum < /tmp/acc.out)" ] && [ "$(grep -c "accepted 10.77.0.2" /tmp/acc.err)" = 3 ]'
ports=$(sed -n 's/.*accepted [0-9.]*:\([0-9]*\) on endpoint.*/\1/p' /tmp/acc.err | sort -u | wc -l)
check "each accepted connection had its own 4-tuple" '[ "$ports" = 3 ]'

# --- a connection nobody accepts is reset when the listen closes
start_listen < /dev/null > /tmp/acc.out || check "listen" false
# The first client is accepted and holds utcp-xfer busy until it sends; the second gets
# established in the registry's backlog and is never claimed.
# (The first waits for a file the script writes once the second is connected.)
rm -f /tmp/go /tmp/hold.out
( while [ ! -f /tmp/go ]; do sleep 0.2; done; cat /tmp/s1 ) | in_b timeout 600 nc -N "$UTCP_IP_A" $port > /dev/null &
first=$!
sleep 2
in_b timeout 600 python3 /tmp/kclient.py hold "$UTCP_IP_A" $port > /tmp/hold.out &
holder=$!
for _ in $(seq 3000); do grep -q connect_ms /tmp/hold.out 2>/dev/null && break; sleep 0.2; done
touch /tmp/go
wait $first
wait $xfer_pid
wait $holder
hold=$(tail -n 1 /tmp/hold.out)
check "unclaimed connection reset when the listen closed" '[ "$hold" = reset ]'
[ "$hold" = reset ] || { echo "hold: $hold"; cat /tmp/acc.err; }
check "the claimed one completed" 'cmp -s /tmp/s1 /tmp/acc.out'
# utcp-xfer closed first (its stdin was empty): utcpd holds the port through TIME-WAIT
# (3 s here), then it is the kernel's again.
port_free() {  # PORT: would a kernel socket get it now (plain bind)?
	[ "$(in_a "$probe" kernel-bind "$UTCP_IP_A" "$1")" = bound ]
}
wait_for 20 port_free $port
check "port free again once the listen and its connection (after TIME-WAIT) are gone" 'port_free $port'

# --- a passive close: the kernel client closes first, utcp-xfer after it has read
# everything (its stdin, a FIFO, ends only then): LAST-ACK, no TIME-WAIT (RFC 9293).
head -c 50000 /dev/urandom > /tmp/pc
rm -f /tmp/pc.fifo /tmp/acc.out
mkfifo /tmp/pc.fifo
( exec 7>/tmp/pc.fifo
  for _ in $(seq 1500); do [ "$(stat -c %s /tmp/acc.out 2>/dev/null)" = 50000 ] && break; sleep 0.2; done
  sleep 1 ) &
writer=$!
start_listen < /tmp/pc.fifo > /tmp/acc.out || check "listen" false
in_b timeout 600 nc -N "$UTCP_IP_A" $port < /tmp/pc > /dev/null
wait $writer
wait $xfer_pid
check "passive close: every byte arrived" 'cmp -s /tmp/pc /tmp/acc.out'
wait_for 20 grep -q "port $port closed after the peer" /tmp/utcpd.log
check "passive close: utcpd finished it as LAST-ACK, not TIME-WAIT" \
	'grep -q "port $port closed after the peer" /tmp/utcpd.log && ! grep -q "port $port closed: TIME-WAIT" /tmp/utcpd.log'
grep "port $port " /tmp/utcpd.log
wait_for 10 port_free $port
check "passive close: the port is free at once (no 2·MSL hold)" 'port_free $port'

# --- SYN flood from spoofed addresses: cookies, and a real client still gets in
cat > /tmp/synflood.py <<'EOF'
import random, socket, struct, sys
dst, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
d = socket.inet_aton(dst)
rnd = random.Random(7)
for i in range(count):
    src = socket.inet_aton("10.77.0.%d" % rnd.randint(100, 250))  # nobody answers there
    sport, seq = rnd.randint(1024, 65535), rnd.getrandbits(32)
    opts = struct.pack("!BBH", 2, 4, 1460)
    tcp = struct.pack("!HHIIBBHHH", sport, port, seq, 0, (5 + 1) << 4, 0x02, 64240, 0, 0) + opts
    c = csum(src + d + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)
    tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xffff, 0, 64, 6, 0, src, d)
    r.sendto(ip + tcp, (dst, 0))
print("sent", count, flush=True)
EOF
start_listen < /dev/null > /tmp/acc.out || check "listen for the flood" false
flood=$(in_b timeout 600 python3 /tmp/synflood.py "$UTCP_IP_A" $port 3000)
echo "    flood: $flood SYNs from spoofed 10.77.0.100-250"
in_b timeout 600 nc -N "$UTCP_IP_A" $port < /tmp/1m > /dev/null
krc=$?
wait $xfer_pid
check "a real client gets in during a SYN flood, 1 MiB sha256 equal" \
	'[ $krc = 0 ] && [ "$(sha256sum < /tmp/acc.out)" = "$(sha256sum < /tmp/1m)" ]'
sleep 0.5
line=$(grep "listen .* on port $port closed" /tmp/utcpd.log | tail -n 1)
echo "    utcpd: ${line#*: info: }"
sent=$(echo "$line" | sed -n 's/.*SYN cookies sent \([0-9]*\), valid \([0-9]*\), refused \([0-9]*\).*/\1/p')
valid=$(echo "$line" | sed -n 's/.*SYN cookies sent \([0-9]*\), valid \([0-9]*\), refused \([0-9]*\).*/\2/p')
check "SYN flood answered with cookies (utcpd's counters)" '[ -n "$sent" ] && [ "$sent" -gt 1000 ]'
check "the real client's connection came through a valid cookie" '[ -n "$valid" ] && [ "$valid" -ge 1 ]'

stop_utcpd >/dev/null
sleep 0.5
check "module endpoints reclaimed after the transfers" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'
finish
