import json
import urllib.request

from shop.api import serve


def _post(port, body):
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/cart",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_add_and_read():
    server, port = serve()
    try:
        assert _post(port, {"sku": "apple", "price_cents": 50, "quantity": 2})[0] == 201
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/cart") as r:
            assert json.load(r) == {"count": 2, "total_cents": 100}
    finally:
        server.shutdown()


def test_bad_request():
    server, port = serve()
    try:
        assert _post(port, {"sku": "apple"})[0] == 400
    finally:
        server.shutdown()
