from shop.cart import Cart


def test_cart_starts_empty():
    assert Cart().count() == 0


def test_import_api():
    import shop.api  # noqa: F401
