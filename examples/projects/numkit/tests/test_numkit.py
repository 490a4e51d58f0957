from numkit import clamp, digit_sum, factorial, is_even, is_prime, mean, median, percent


def test_clamp():
    assert clamp(5, 0, 10) == 5
    assert clamp(-3, 0, 10) == 0
    assert clamp(12, 0, 10) == 10
    assert clamp(10, 0, 10) == 10


def test_mean():
    assert mean([1, 2, 3, 4]) == 2.5
    assert mean([5]) == 5


def test_median():
    assert median([3, 1, 2]) == 2
    assert median([4, 1, 3, 2]) == 2.5
    assert median([7]) == 7


def test_is_prime():
    assert [n for n in range(20) if is_prime(n)] == [2, 3, 5, 7, 11, 13, 17, 19]
    assert is_prime(49) is False


def test_factorial():
    assert factorial(0) == 1
    assert factorial(1) == 1
    assert factorial(5) == 120


def test_digit_sum():
    assert digit_sum(1234) == 10
    assert digit_sum(-56) == 11
    assert digit_sum(0) == 0


def test_percent():
    assert percent(1, 4) == 25.0
    assert percent(3, 0) == 0.0


def test_is_even():
    assert is_even(4)
    assert not is_even(7)
    assert is_even(0)
