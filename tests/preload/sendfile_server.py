#!/usr/bin/env python3
"""sendfile_server.py PORT FILE - accepts one connection on PORT and sends FILE with
sendfile(2), for the preload layer's VM test (it knows nothing of utcp): the first half
with os.sendfile(out, in, None, n) (the file's own offset moves), the rest with
socket.sendfile(f, offset) (os.sendfile with an explicit offset; socket.sendfile starts at
its offset argument, 0 by default, not at the file's offset); then closes and prints "sent
N bytes". Exits 1 when the file's offset or a count is not what it must be (checked
against plain kernel TCP too)."""
import os
import socket
import sys

port, path = int(sys.argv[1]), sys.argv[2]
size = os.path.getsize(path)
ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("0.0.0.0", port))
ls.listen(1)
c, _ = ls.accept()
with open(path, "rb") as f:
    sent = 0
    while sent < size // 2:
        n = os.sendfile(c.fileno(), f.fileno(), None, size // 2 - sent)
        if n <= 0:
            sys.exit("os.sendfile returned %d" % n)
        sent += n
    if f.tell() != sent:
        sys.exit("file offset %d after sending %d bytes" % (f.tell(), sent))
    sent += c.sendfile(f, sent)
    if f.tell() != sent:  # socket.sendfile leaves the file's offset past what it sent
        sys.exit("file offset %d after sending %d bytes" % (f.tell(), sent))
c.close()
ls.close()
print("sent %d bytes" % sent, flush=True)
sys.exit(0 if sent == size else 1)
