#!/usr/bin/env python3
"""tcp_peer.py - the kernel-TCP side of transfers in the VM: a plain socket server.

  tcp_peer.py sink ADDR PORT        accept one connection, read to EOF, print "BYTES SHA256"
  tcp_peer.py source ADDR PORT FILE accept one connection, send FILE, close
  tcp_peer.py echo ADDR PORT        accept one connection, echo until EOF
  tcp_peer.py watch ADDR PORT       accept one connection, read until it ends; print
                                    "eof BYTES" or "reset BYTES" (ECONNRESET), and
                                    "progress" on stderr after the first 64 KiB
Prints "listening" on stderr once it accepts connections.
"""
import hashlib
import socket
import sys

mode, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(1)
srv.settimeout(120)
print("listening", file=sys.stderr, flush=True)
conn, _ = srv.accept()
# Idle limit on the connection: long, as a script may hold a connection open on purpose
# while it looks at it (registry_ss: several slow steps in a loaded guest took > 120 s
# and the sink gave up, the connection went to CLOSE-WAIT under the checks).
conn.settimeout(600)
if mode == "sink":
    h, n = hashlib.sha256(), 0
    while True:
        b = conn.recv(1 << 16)
        if not b:
            break
        h.update(b)
        n += len(b)
    print(n, h.hexdigest(), flush=True)
elif mode == "source":
    with open(sys.argv[4], "rb") as f:
        while True:
            b = f.read(1 << 16)
            if not b:
                break
            conn.sendall(b)
    conn.shutdown(socket.SHUT_WR)
    while conn.recv(1 << 16):
        pass
elif mode == "watch":
    n, how, told = 0, "eof", False
    try:
        while True:
            b = conn.recv(1 << 16)
            if not b:
                break
            n += len(b)
            if n >= 65536 and not told:
                print("progress", file=sys.stderr, flush=True)
                told = True
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "timeout"
    print(how, n, flush=True)
elif mode == "echo":
    while True:
        b = conn.recv(1 << 16)
        if not b:
            break
        conn.sendall(b)
conn.close()
