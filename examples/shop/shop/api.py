"""A minimal HTTP API over the cart, served from the standard library."""

import json
from http.server import BaseHTTPRequestHandler, HTTPServer
from threading import Thread

from .cart import Cart


def serve(port=0):
    """Starts the API on a free loopback port; returns (server, port)."""
    cart = Cart()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body):
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/cart":
                self._send(200, {"count": cart.count(), "total_cents": cart.total_cents()})
            else:
                self._send(404, {"error": "not found"})

        def do_POST(self):
            length = int(self.headers.get("Content-Length", 0))
            item = json.loads(self.rfile.read(length) or b"{}")
            try:
                cart.add(item["sku"], int(item["price_cents"]), int(item.get("quantity", 1)))
            except (KeyError, ValueError) as e:
                self._send(400, {"error": str(e)})
                return
            self._send(201, {"count": cart.count()})

    server = HTTPServer(("127.0.0.1", port), Handler)
    Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
