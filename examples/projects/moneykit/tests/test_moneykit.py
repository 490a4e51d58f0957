from moneykit import add_tax, can_afford, change_due, discount, format_cents, split_bill, total


def test_add_tax():
    assert add_tax(1000, 20) == 1200
    assert add_tax(999, 5) == 1049
    assert add_tax(500, 0) == 500


def test_discount():
    assert discount(1000, 25) == 750
    assert discount(1000, 0) == 1000
    assert discount(1000, 150) == 0


def test_split_bill():
    assert split_bill(100, 3) == [34, 33, 33]
    assert split_bill(90, 3) == [30, 30, 30]
    assert sum(split_bill(1001, 4)) == 1001


def test_format_cents():
    assert format_cents(1234) == "12.34"
    assert format_cents(5) == "0.05"
    assert format_cents(-250) == "-2.50"


def test_can_afford():
    assert can_afford(500, 500)
    assert can_afford(499, 500)
    assert not can_afford(501, 500)


def test_total():
    assert total([(250, 2), (100, 3)]) == 800
    assert total([]) == 0


def test_change_due():
    assert change_due(1000, 750) == 250
    assert change_due(500, 750) == 0
    assert change_due(750, 750) == 0
