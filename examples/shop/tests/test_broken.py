"""A deliberate failure (only run by testlayer-broken.yaml)."""

from shop.cart import Cart


def test_discount_over_100_percent_is_rejected():
    c = Cart()
    c.add("apple", 100)
    # The cart does not check the discount, so this fails: on purpose.
    assert c.total_cents(discount_percent=150) >= 0
