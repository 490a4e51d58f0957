from listkit import (
    argmax,
    chunk,
    count_if_above,
    dedupe,
    flatten,
    rotate,
    take_while_positive,
    window,
)


def test_chunk():
    assert chunk([1, 2, 3, 4, 5], 2) == [[1, 2], [3, 4], [5]]
    assert chunk([], 3) == []


def test_flatten():
    assert flatten([[1], [2, 3], []]) == [1, 2, 3]


def test_dedupe():
    assert dedupe([3, 1, 3, 2, 1]) == [3, 1, 2]


def test_window():
    assert window([1, 2, 3, 4], 2) == [[1, 2], [2, 3], [3, 4]]
    assert window([1, 2], 3) == []


def test_rotate():
    assert rotate([1, 2, 3, 4], 1) == [2, 3, 4, 1]
    assert rotate([1, 2, 3], 5) == [3, 1, 2]
    assert rotate([], 2) == []


def test_argmax():
    assert argmax([1, 5, 3]) == 1
    assert argmax([4, 4, 1]) == 0
    assert argmax([1, 2, 9]) == 2


def test_take_while_positive():
    assert take_while_positive([3, 1, 0, 5]) == [3, 1]
    assert take_while_positive([-1, 2]) == []


def test_count_if_above():
    assert count_if_above([1, 5, 7, 3], 3) == 2
    assert count_if_above([], 0) == 0
