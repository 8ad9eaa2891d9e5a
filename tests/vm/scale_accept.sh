#!/usr/bin/env bash
# scale_accept: 1,000 connections accepted on one utcp listen (issue 6). utcpd listens
# for registry_accept_many and runs every handshake (passive open, paper §3.4; SYN
# cookies when its SYN queue is full); 1,000 kernel-TCP clients in namespace B connect at
# once, each sends 4 KiB of its own seeded bytes and ends its direction. The server takes
# all 1,000 (each with its own endpoint and imported state), holds them open together,
# checks every connection's bytes, echoes them, closes; each client checks its echo.
# Afterwards no endpoint is left live and utcpd's listen is gone.
set -u
. "$UTCP_SRC/tests/vm/lib.bash"
need_classifier
server=$UTCP_BUILD/tests/registry/registry_accept_many
probe=$UTCP_BUILD/tests/registry/registry_probe
export UTCP_REGISTRY=/run/utcp/utcpd.sock
# A socket file left by an earlier script's utcpd would pass for the new one before it binds.
rm -f "$UTCP_REGISTRY"
n=${UTCP_SCALE_CONNECTIONS:-1000}
bytes=4096
# Descriptors: 1,000 sockets in the client, 1,000 endpoint files in the server and utcpd.
ulimit -n 65536 2>/dev/null || true
start_utcpd -q >/dev/null || { echo "FAIL: utcpd starts"; exit 1; }
port=9100

# The kernel clients: one process, non-blocking sockets. Client i sends its index (4
# bytes, big-endian) and splitmix64 from seed i+1 (seeded_stream.h's SeededStream), then
# SHUT_WR, and reads its echo to the server's FIN.
cat > /tmp/kclients.py <<'PY'
import selectors, socket, struct, sys, time
addr, port, n, nbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
M = (1 << 64) - 1
def stream(seed, count):
    out, s = bytearray(), seed
    while len(out) < count:
        s = (s + 0x9e3779b97f4a7c15) & M
        z = s
        z = ((z ^ (z >> 30)) * 0xbf58476d1ce4e5b9) & M
        z = ((z ^ (z >> 27)) * 0x94d049bb133111eb) & M
        out += struct.pack('<Q', z ^ (z >> 31))
    return bytes(out[:count])
sel = selectors.DefaultSelector()
conns = {}
t0 = time.monotonic()
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex((addr, port))
    c = {'i': i, 'data': struct.pack('>I', i) + stream(i + 1, nbytes - 4), 'off': 0, 'echo': bytearray(),
         'state': 'connecting'}
    conns[s] = c
    sel.register(s, selectors.EVENT_WRITE, c)
connected = ok = bad = 0
deadline = time.monotonic() + 600
left = n
while left and time.monotonic() < deadline:
    for key, ev in sel.select(timeout=1):
        s, c = key.fileobj, key.data
        if c['state'] == 'connecting':
            e = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if e:
                print('client %d: connect: %s' % (c['i'], socket.errno.errorcode.get(e, e)), flush=True)
                bad += 1; left -= 1; sel.unregister(s); s.close(); continue
            connected += 1
            c['state'] = 'sending'
        if c['state'] == 'sending' and ev & selectors.EVENT_WRITE:
            try:
                c['off'] += s.send(c['data'][c['off']:])
            except BlockingIOError:
                pass
            if c['off'] == len(c['data']):
                s.shutdown(socket.SHUT_WR)
                c['state'] = 'reading'
                sel.modify(s, selectors.EVENT_READ, c)
            continue
        if c['state'] == 'reading':
            try:
                b = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError as e:
                print('client %d: %s' % (c['i'], e), flush=True)
                b = None
            if b:
                c['echo'] += b
                continue
            if b is not None and bytes(c['echo']) == c['data']:
                ok += 1
            else:
                bad += 1
                if bad <= 10:
                    print('client %d: echo of %d bytes differs from the %d sent' % (c['i'], len(c['echo']), len(c['data'])), flush=True)
            left -= 1
            sel.unregister(s)
            s.close()
print('clients %d: connected %d, echo ok %d, bad %d, unfinished %d after %.1f s' %
      (n, connected, ok, bad, left, time.monotonic() - t0), flush=True)
sys.exit(0 if ok == n else 1)
PY

in_a timeout 900 "$server" $port "$n" $bytes --rings 32,32,2048 >/tmp/acc.out 2>/tmp/acc.err &
spid=$!
wait_for 60 grep -q "listening on" /tmp/acc.err || { echo "FAIL: accept_many listens"; cat /tmp/acc.err; stop_utcpd; exit 1; }
in_b timeout 900 python3 /tmp/kclients.py "$UTCP_IP_A" $port "$n" $bytes >/tmp/kc.out 2>&1
crc=$?
wait $spid
src=$?
sed 's/^/    /' /tmp/acc.out /tmp/kc.out
check "$n kernel clients: every connection's echo equals what it sent (exit $crc)" '[ "$crc" = 0 ]'
check "utcp server: $n accepted on one listen, all open at once, every byte checked, all released (exit $src)" \
	'[ "$src" = 0 ] && grep -q "^accepted $n, open at once $n, checked $n, released $n, errors 0;" /tmp/acc.out'
[ "$src" = 0 ] || tail -n 20 /tmp/acc.err
wait_for 30 no_live_endpoints
check "every endpoint reclaimed" '[ "$(in_a "$probe" live-endpoints)" = 0 ]'
stop_utcpd | grep -E "listen .* closed|error" | head -5
finish
