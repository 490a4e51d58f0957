"""Small calendar helpers."""

MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def is_leap(year):
    """True for leap years of the Gregorian calendar."""
    if year % 400 == 0:
        return True
    if year % 100 == 0:
        return False
    return year % 4 == 0


def days_in_month(year, month):
    """Number of days of ``month`` (1-12) in ``year``."""
    if month == 2 and is_leap(year):
        return 29
    return MONTH_DAYS[month - 1]


def day_of_year(year, month, day):
    """1 for January 1st, 365 or 366 for December 31st."""
    total = day
    for m in range(1, month):
        total += days_in_month(year, m)
    return total


def quarter(month):
    """The quarter (1-4) a month (1-12) falls in."""
    return (month - 1) // 3 + 1


def is_weekend(weekday):
    """True for Saturday (5) and Sunday (6), Monday being 0."""
    return weekday >= 5


def minutes_to_hours(minutes):
    """``minutes`` written as ``H:MM``."""
    hours = minutes // 60
    rest = minutes % 60
    return f"{hours}:{rest:02d}"


def age(birth_year, birth_month, year, month):
    """Whole years between a birth month and a later month."""
    years = year - birth_year
    if month < birth_month:
        years -= 1
    return years
