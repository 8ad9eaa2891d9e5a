#!/usr/bin/env bash
# utcpctl_pcap_test.sh UTCPCTL - `utcpctl pcap` writes exactly the frames of the flow it
# was asked for, in order, as a valid pcap file: in a private network namespace, UDP
# datagrams to the flow's port are kept; datagrams to another port and the ICMP errors the
# kernel answers with are left out. Skips (77) without the right to make a namespace.
set -u
utcpctl=$1
if [ "${2:-}" != --inside ]; then
  unshare -n true 2>/dev/null || { echo "SKIP: cannot create a network namespace (needs root)"; exit 77; }
  exec unshare -n bash "$0" "$utcpctl" --inside
fi
ip link set lo up || { echo "FAIL: ip link set lo up"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkfifo "$tmp/out"
"$utcpctl" pcap lo "$tmp/cap.pcap" --local 127.0.0.1:7000 --count 3 --timeout-ms 120000 >"$tmp/out" 2>&1 &
pid=$!
exec 3<"$tmp/out"
read -r ready <&3   # blocks until the capture socket is bound
case $ready in "pcap: capturing on lo"*) ;; *) echo "FAIL: utcpctl pcap did not start: $ready"; exit 1 ;; esac
for i in 0 1 2; do
  printf 'noise%d' "$i" >/dev/udp/127.0.0.1/7001
  printf 'hello%d' "$i" >/dev/udp/127.0.0.1/7000
done
wait "$pid"; rc=$?
summary=$(cat <&3)
[ "$rc" = 0 ] || { echo "FAIL: utcpctl pcap exited $rc: $summary"; exit 1; }
echo "$summary" | grep -q "3 frames written" || { echo "FAIL: summary: $summary"; exit 1; }
python3 - "$tmp/cap.pcap" <<'PY' || exit 1
import struct, sys
data = open(sys.argv[1], 'rb').read()
magic, vmaj, vmin, _, _, snap, link = struct.unpack('<IHHiIII', data[:24])
assert (magic, vmaj, vmin, link) == (0xa1b2c3d4, 2, 4, 1), 'bad pcap header'
off, got = 24, []
while off < len(data):
    sec, usec, caplen, length = struct.unpack('<IIII', data[off:off + 16])
    frame = data[off + 16:off + 16 + caplen]
    off += 16 + caplen
    assert caplen == length == len(frame), 'truncated record'
    assert frame[12:14] == b'\x08\x00' and frame[23] == 17, 'not IPv4/UDP'
    ihl = (frame[14] & 15) * 4
    sport, dport, ulen = struct.unpack('>HHH', frame[14 + ihl:14 + ihl + 6])
    got.append((dport, frame[14 + ihl + 8:14 + ihl + ulen]))
want = [(7000, b'hello%d' % i) for i in range(3)]
if got != want:
    print('FAIL: captured', got, 'expected', want)
    sys.exit(1)
print('PASS: 3 datagrams of the flow captured in order; other port and ICMP left out')
PY
