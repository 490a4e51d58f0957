"""Small number helpers."""


def clamp(value, low, high):
    """``value`` limited to the range [low, high]."""
    if value < low:
        return low
    if value > high:
        return high
    return value


def mean(values):
    """The arithmetic mean of a non-empty list."""
    return sum(values) / len(values)


def median(values):
    """The middle value of a non-empty list (the mean of the two middle ones when even)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2 == 1:
        return ordered[mid]
    return (ordered[mid - 1] + ordered[mid]) / 2


def is_prime(n):
    """True when ``n`` is a prime number."""
    if n < 2:
        return False
    k = 2
    while k * k <= n:
        if n % k == 0:
            return False
        k += 1
    return True


def factorial(n):
    """n! for n >= 0."""
    result = 1
    for k in range(2, n + 1):
        result *= k
    return result


def digit_sum(n):
    """The sum of the decimal digits of ``n`` (sign ignored)."""
    n = abs(n)
    total = 0
    while n > 0:
        total += n % 10
        n //= 10
    return total


def percent(part, whole):
    """``part`` as a percentage of ``whole``, 0 when ``whole`` is 0."""
    if whole == 0:
        return 0.0
    return 100.0 * part / whole


def is_even(n):
    """True for even integers."""
    return n % 2 == 0
