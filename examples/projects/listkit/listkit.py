"""Small list helpers."""


def chunk(items, size):
    """``items`` cut into lists of ``size`` (the last one may be shorter)."""
    return [items[i:i + size] for i in range(0, len(items), size)]


def flatten(nested):
    """One list of the items of a list of lists."""
    out = []
    for part in nested:
        out.extend(part)
    return out


def dedupe(items):
    """``items`` without repeats, first occurrences kept in order."""
    seen = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def window(items, size):
    """Every run of ``size`` consecutive items, as lists."""
    return [items[i:i + size] for i in range(len(items) - size + 1)]


def rotate(items, steps):
    """``items`` rotated left by ``steps``."""
    if not items:
        return []
    steps = steps % len(items)
    return items[steps:] + items[:steps]


def argmax(items):
    """Index of the largest item (the first one on a tie)."""
    best = 0
    for i in range(1, len(items)):
        if items[i] > items[best]:
            best = i
    return best


def take_while_positive(items):
    """The leading items that are greater than zero."""
    out = []
    for item in items:
        if item <= 0:
            break
        out.append(item)
    return out


def count_if_above(items, limit):
    """How many items are strictly greater than ``limit``."""
    return sum(1 for item in items if item > limit)
