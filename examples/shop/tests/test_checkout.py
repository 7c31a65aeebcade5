"""End-to-end checkout: the API and the cart together."""

import json
import urllib.request

from shop.api import serve


def test_checkout_total():
    server, port = serve()
    try:
        for sku, price in [("apple", 50), ("pear", 120), ("book", 999)]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/cart",
                data=json.dumps({"sku": sku, "price_cents": price}).encode(),
                method="POST",
            )
            urllib.request.urlopen(req).close()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cart") as r:
            assert json.load(r)["total_cents"] == 1169
    finally:
        server.shutdown()
