"""The HTTP server of the network-namespace labs: one per node, answering every GET with
the node's name, so a ``curl`` from the client shows which node took the connection.

Run as ``python -c NAME_SERVER NAME PORT`` inside the node's namespace: it listens on
``[::]:PORT`` for IPv4 and IPv6 alike (``IPV6_V6ONLY`` off), so it serves every address local
to the node, the Service addresses routed to ``lo`` included, and prints ``ready`` on stderr
once it listens.
"""

from __future__ import annotations

__all__ = ["NAME_SERVER"]

NAME_SERVER = r"""
import socket
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1].encode()

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", str(len(NAME)))
        self.end_headers()
        self.wfile.write(NAME)
    def log_message(self, *args):
        pass

class DualStack(ThreadingHTTPServer):
    address_family = socket.AF_INET6
    def server_bind(self):
        self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        super().server_bind()

server = DualStack(("::", int(sys.argv[2])), Handler)
print("ready", file=sys.stderr, flush=True)
server.serve_forever()
"""
