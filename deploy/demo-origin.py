#!/usr/bin/env python3
"""A small origin for bucketcache's read-through (docs/origin.md): an
"image service" that renders a picture for any path, counts the requests
it gets, and echoes the exact path it was asked for.

    deploy/demo-origin.py --port 8000 [--listen 127.0.0.1] [--tls-cert PEM --tls-key PEM]

    GET /v1/<anything>   200, a PPM image (image/x-portable-pixmap) drawn from
                         the path, whose comment line and X-Origin-Path header
                         hold the raw path as received (not decoded)
    GET /_stats          {"requests": N, "connections": N, "paths": {raw path: count}}
    GET /_log            [[unix time, raw path], ...]: the last 200000 requests
    POST /_reset         counters and log back to zero

Tests (tests/integration/test_origin.py) ask it for paths whose first
segment after /v1/ picks a behaviour:

    nf/...             404                     gone/...       410
    err/...            500                     busy/...       503
    redir/...          302 to /v1/elsewhere
    slow/<ms>/...      the image, after <ms> milliseconds
    ttl/<s>/...        Cache-Control: max-age=<s>
    nostore/...        Cache-Control: no-store
    expires/<s>/...    Expires: now + <s>, with a Date header
    flags/<n>/...      X-Bucketcache-Flags: <n>  (any text: a bad value)
    size/<n>/...       a body of exactly <n> bytes (Content-Length)
    chunked/<n>/...    <n> bytes, chunked, without Content-Length
    drip/...           Content-Length 100, one byte every 200 ms
    reset/...          Content-Length 100, 10 bytes, then a TCP reset
    short/...          Content-Length 100, 10 bytes, then a clean close
    badhdr/...         a header line without a colon
    badstatus/...      no HTTP status line at all
    fail/...           500 while failing is on (POST /_fail?on=1|0), else the image

Only the standard library; one thread per connection; HTTP/1.1 keep-alive.
"""
import argparse
import hashlib
import json
import socket
import ssl
import struct
import threading
import time
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
STATS = {"requests": 0, "connections": 0, "paths": {}}
LOG = []
LOG_MAX = 200000
FAILING = {"on": False}


def image(raw_path, size=None):
    """A 16x16 PPM drawn from the path (or exactly `size` bytes)."""
    seed = hashlib.sha256(raw_path.encode("latin-1")).digest()
    head = b"P6\n# path: " + raw_path.encode("latin-1") + b"\n16 16\n255\n"
    pixels = bytearray()
    for y in range(16):
        for x in range(16):
            pixels += bytes(((seed[0] + 13 * x) & 255, (seed[1] + 11 * y) & 255,
                             (seed[2] ^ (x * y)) & 255))
    body = head + bytes(pixels)
    if size is not None:
        body = (body * (size // len(body) + 1))[:size]
    return body


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "demo-origin/1"
    disable_nagle_algorithm = True     # headers and body go out as written

    def setup(self):
        super().setup()
        with LOCK:
            STATS["connections"] += 1

    def log_message(self, fmt, *args):  # quiet: the counters say it all
        pass

    def send_body(self, status, body, headers=()):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Origin-Path", self.path)
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def raw(self, data):
        self.wfile.write(data)
        self.wfile.flush()

    def do_POST(self):
        if self.path == "/_reset":
            with LOCK:
                STATS.update(requests=0, connections=0, paths={})
                del LOG[:]
            return self.send_body(200, b"{}", [("Content-Type", "application/json")])
        if self.path.startswith("/_fail?on="):
            FAILING["on"] = self.path.endswith("=1")
            return self.send_body(200, b"{}", [("Content-Type", "application/json")])
        self.send_body(404, b"")

    def do_GET(self):
        if self.path == "/_stats":
            with LOCK:
                doc = json.dumps(STATS).encode()
            return self.send_body(200, doc, [("Content-Type", "application/json")])
        if self.path == "/_log":
            with LOCK:
                doc = json.dumps(LOG).encode()
            return self.send_body(200, doc, [("Content-Type", "application/json")])
        with LOCK:
            STATS["requests"] += 1
            STATS["paths"][self.path] = STATS["paths"].get(self.path, 0) + 1
            if len(LOG) < LOG_MAX:
                LOG.append([time.time(), self.path])
        if not self.path.startswith("/v1/"):
            return self.send_body(404, b"not an image path\n")
        parts = self.path[4:].split("/")
        kind = parts[0]
        arg = parts[1] if len(parts) > 1 else ""
        img = [("Content-Type", "image/x-portable-pixmap")]
        if kind == "nf":
            return self.send_body(404, b"no such image\n")
        if kind == "gone":
            return self.send_body(410, b"gone\n")
        if kind == "err" or (kind == "fail" and FAILING["on"]):
            return self.send_body(500, b"resize failed\n")
        if kind == "busy":
            return self.send_body(503, b"busy\n")
        if kind == "redir":
            return self.send_body(302, b"", [("Location", "/v1/elsewhere")])
        if kind == "slow":
            time.sleep(int(arg) / 1000.0)
        elif kind == "ttl":
            img.append(("Cache-Control", "max-age=" + arg))
        elif kind == "nostore":
            img.append(("Cache-Control", "no-store"))
        elif kind == "expires":
            now = time.time()
            img.append(("Date", formatdate(now, usegmt=True)))
            img.append(("Expires", formatdate(now + int(arg), usegmt=True)))
        elif kind == "flags":
            img.append(("X-Bucketcache-Flags", arg))
        elif kind == "size":
            return self.send_body(200, image(self.path, int(arg)), img)
        elif kind == "chunked":
            body = image(self.path, int(arg))
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(body), 65536):
                piece = body[i:i + 65536]
                self.raw(b"%x\r\n" % len(piece) + piece + b"\r\n")
            return self.raw(b"0\r\n\r\n")
        elif kind in ("drip", "reset", "short"):
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
            if kind == "drip":
                for _ in range(100):
                    time.sleep(0.2)
                    self.raw(b"x")
                return
            self.raw(b"0123456789")
            if kind == "reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                           struct.pack("ii", 1, 0))
            self.close_connection = True
            return
        elif kind == "badhdr":
            self.raw(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nthis line has no colon\r\n\r\nbody")
            self.close_connection = True
            return
        elif kind == "badstatus":
            self.raw(b"this is not http\r\n\r\n")
            self.close_connection = True
            return
        self.send_body(200, image(self.path), img)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8000)
    ap.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    ap.add_argument("--tls-key", help="... and this private key (PEM)")
    args = ap.parse_args()
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer.request_queue_size = 1024   # listen backlog (5 by default)
    srv = ThreadingHTTPServer((args.listen, args.port), Handler)
    scheme = "http"
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
        scheme = "https"
    print("demo origin on %s://%s:%d/v1/{key}" % (scheme, args.listen, args.port), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
