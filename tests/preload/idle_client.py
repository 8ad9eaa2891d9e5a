#!/usr/bin/env python3
"""idle_client.py ADDR PORT SECONDS - run under the preload layer against an echo peer:
connects, then waits SECONDS in a blocking recv() and SECONDS in select() while the peer
stays quiet, then sends a line and reads it back. Prints the CPU seconds the whole
process used during the two quiet waits, so a caller can tell a process that sleeps
while it waits from one that spins: "cpu SECONDS waited SECONDS reply LINE"."""
import errno
import resource
import select
import socket
import struct
import sys

addr, port, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.create_connection((addr, port))
ru0 = resource.getrusage(resource.RUSAGE_SELF)
# 1. a blocking recv bounded by SO_RCVTIMEO (the socket itself stays blocking): nothing
# arrives, the call fails with EAGAIN at the timeout
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", int(secs), int(secs % 1 * 1e6)))
try:
    got = s.recv(1)
    print(f"unexpected data {got!r}")
    sys.exit(1)
except OSError as e:
    if e.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
        raise
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
# 2. select with a timeout: nothing arrives
r, _, _ = select.select([s], [], [], secs)
if r:
    print("select reported the quiet connection readable")
    sys.exit(1)
ru1 = resource.getrusage(resource.RUSAGE_SELF)
cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
# 3. the peer answers a request: the wait ends with the data
s.sendall(b"ping\n")
line = b""
while not line.endswith(b"\n"):
    b = s.recv(64)
    if not b:
        break
    line += b
print(f"cpu {cpu:.3f} waited {2 * secs:.1f} reply {line.strip().decode(errors='replace')}")
s.close()
