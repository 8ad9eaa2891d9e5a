#!/usr/bin/env python3
"""relisten_server.py PORT PAUSE - a server that closes its listener and listens again on
the same port, as iperf3 -s does, for the preload layer's VM test (it knows nothing of utcp).

1. listens on PORT with SO_REUSEADDR, accepts one connection, sends "one\\n" and closes it
   first (so the TIME-WAIT is this side's), then closes the listener;
2. sleeps PAUSE seconds;
3. a socket without SO_REUSEADDR binds PORT: Linux refuses (EADDRINUSE) while the
   connection is in TIME-WAIT; prints "plain bind: EADDRINUSE" (or "plain bind: ok");
4. a socket with SO_REUSEADDR binds and listens on PORT (Linux allows it), accepts one more
   connection and sends "two\\n". Prints "relisten: ok" then, or the error and exits 1."""
import errno
import socket
import sys
import time

port, pause = int(sys.argv[1]), float(sys.argv[2])


def serve(word):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(4)
    print("listening", flush=True)
    c, _ = s.accept()
    c.sendall(word + b"\n")
    c.close()
    s.close()


serve(b"one")
time.sleep(pause)
p = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
try:
    p.bind(("0.0.0.0", port))
    print("plain bind: ok", flush=True)
except OSError as e:
    print("plain bind: " + (errno.errorcode.get(e.errno, str(e.errno))), flush=True)
p.close()
try:
    serve(b"two")
except OSError as e:
    print("relisten: " + str(e), flush=True)
    sys.exit(1)
print("relisten: ok", flush=True)
