#!/usr/bin/env python3
"""upload_server.py ADDR PORT OUT - a small HTTP server for `curl -T`: writes each PUT or
POST body to OUT (Content-Length or chunked) and answers with its sha256."""
import hashlib
import http.server
import sys


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                n = int(self.rfile.readline().split(b";")[0], 16)
                if n == 0:
                    self.rfile.readline()
                    return
                yield self.rfile.read(n)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left > 0:
            b = self.rfile.read(min(left, 1 << 16))
            if not b:
                raise ConnectionError("short body")
            left -= len(b)
            yield b

    def do_PUT(self):
        h = hashlib.sha256()
        with open(sys.argv[3], "wb") as f:
            for b in self.body():
                h.update(b)
                f.write(b)
        reply = (h.hexdigest() + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    do_POST = do_PUT

    def log_message(self, *a):
        pass


srv = http.server.HTTPServer((sys.argv[1], int(sys.argv[2])), Handler)
print("listening", file=sys.stderr, flush=True)
srv.serve_forever()
