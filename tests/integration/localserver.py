"""What the local test servers (fake_provider, fake_services,
scripted_provider) share: a threaded HTTP server on 127.0.0.1:<free port>
that hands every request to one function and counts the connections it
accepts, request-body reading, and small valid PNG files."""
import struct
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    connections = 0     # TCP connections accepted so far
    # kilnd opens many connections at once; the default backlog of 5
    # would delay some by a SYN retransmit (1 s and more)
    request_queue_size = 512

    def handle_error(self, request, client_address):
        # a killed or stopping kilnd resets its connections: no traceback
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return
        super().handle_error(request, client_address)


def serve(handle):
    """Starts a server whose every request (any method) runs handle(h),
    h being the BaseHTTPRequestHandler.  Returns (server, port)."""
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *args):
            pass

        def setup(self):
            super().setup()
            with server_lock:
                self.server.connections += 1

        def _any(self):
            handle(self)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

    server_lock = threading.Lock()
    server = QuietServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever,
                     kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server, server.server_address[1]


def read_body(h):
    """The request body, plain or chunked."""
    if "chunked" in (h.headers.get("Transfer-Encoding") or "").lower():
        data = b""
        while True:
            size = int(h.rfile.readline().split(b";")[0].strip(), 16)
            if size == 0:
                h.rfile.readline()
                return data
            data += h.rfile.read(size)
            h.rfile.readline()
    n = int(h.headers.get("Content-Length") or 0)
    return h.rfile.read(n) if n else b""


def png_bytes(width=8, height=8, seed=0, pad=0):
    """A valid PNG of width x height RGB pixels whose bytes depend on seed
    (any value); pad adds an ancillary tEXt chunk of that many bytes."""
    offset = seed if isinstance(seed, int) else zlib.crc32(
        str(seed).encode())

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)

    rows = b""
    for y in range(height):
        rows += b"\x00" + bytes(((x * 7 + y * 13 + offset) % 256)
                                for x in range(width * 3))
    out = b"\x89PNG\r\n\x1a\n"
    out += chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0,
                                      0, 0))
    if pad:
        out += chunk(b"tEXt", b"Comment\x00" + b"k" * pad)
    out += chunk(b"IDAT", zlib.compress(rows))
    out += chunk(b"IEND", b"")
    return out
