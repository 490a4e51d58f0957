"""Small money helpers (amounts in cents, as integers)."""


def add_tax(cents, rate_percent):
    """``cents`` plus tax at ``rate_percent``, rounded to the cent."""
    return round(cents * (100 + rate_percent) / 100)


def discount(cents, percent):
    """``cents`` reduced by ``percent``; never below zero."""
    reduced = cents - cents * percent // 100
    return max(reduced, 0)


def split_bill(total, people):
    """Shares of ``total`` for ``people``: equal, the first ones a cent more when it does
    not divide."""
    base = total // people
    extra = total % people
    return [base + 1 if i < extra else base for i in range(people)]


def format_cents(cents):
    """``1234`` -> ``"12.34"``; a minus sign for negative amounts."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def can_afford(price, budget):
    """True when ``price`` fits in ``budget``."""
    return price <= budget


def total(items):
    """The sum of ``(unit_cents, quantity)`` pairs."""
    amount = 0
    for unit, quantity in items:
        amount += unit * quantity
    return amount


def change_due(paid, price):
    """What to give back; 0 when not enough was paid."""
    if paid < price:
        return 0
    return paid - price
