"""A shopping cart with prices in cents."""


class Cart:
    def __init__(self):
        self.items = {}

    def add(self, sku, price_cents, quantity=1):
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        if price_cents < 0:
            raise ValueError("price must not be negative")
        name, (price, qty) = sku, self.items.get(sku, (price_cents, 0))
        self.items[name] = (price, qty + quantity)

    def remove(self, sku):
        self.items.pop(sku, None)

    def total_cents(self, discount_percent=0):
        subtotal = sum(price * qty for price, qty in self.items.values())
        return subtotal - (subtotal * discount_percent) // 100

    def count(self):
        return sum(qty for _, qty in self.items.values())
