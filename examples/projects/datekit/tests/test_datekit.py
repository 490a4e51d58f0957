from datekit import age, day_of_year, days_in_month, is_leap, is_weekend, minutes_to_hours, quarter


def test_is_leap():
    assert is_leap(2024)
    assert not is_leap(2023)
    assert not is_leap(1900)
    assert is_leap(2000)


def test_days_in_month():
    assert days_in_month(2023, 1) == 31
    assert days_in_month(2024, 2) == 29
    assert days_in_month(2023, 2) == 28
    assert days_in_month(2023, 4) == 30


def test_day_of_year():
    assert day_of_year(2023, 1, 1) == 1
    assert day_of_year(2023, 3, 1) == 60
    assert day_of_year(2024, 12, 31) == 366


def test_quarter():
    assert [quarter(m) for m in range(1, 13)] == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]


def test_is_weekend():
    assert is_weekend(5) and is_weekend(6)
    assert not is_weekend(4)
    assert not is_weekend(0)


def test_minutes_to_hours():
    assert minutes_to_hours(135) == "2:15"
    assert minutes_to_hours(60) == "1:00"
    assert minutes_to_hours(5) == "0:05"


def test_age():
    assert age(1990, 6, 2020, 6) == 30
    assert age(1990, 6, 2020, 5) == 29
    assert age(1990, 6, 2020, 7) == 30
