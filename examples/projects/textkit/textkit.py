"""Small string helpers."""


def truncate(text, width, suffix="..."):
    """Cut ``text`` to at most ``width`` characters, ending with ``suffix`` when cut."""
    if len(text) <= width:
        return text
    return text[: width - len(suffix)] + suffix


def count_vowels(text):
    """How many vowels (a, e, i, o, u, any case) ``text`` holds."""
    total = 0
    for ch in text.lower():
        if ch in "aeiou":
            total += 1
    return total


def is_palindrome(text):
    """True when ``text`` reads the same both ways, ignoring case and spaces."""
    letters = [ch.lower() for ch in text if ch != " "]
    return letters == letters[::-1]


def pad_left(text, width, fill=" "):
    """``text`` right-aligned in ``width`` characters."""
    missing = width - len(text)
    if missing <= 0:
        return text
    return fill * missing + text


def initials(name):
    """The upper-case first letter of each word of ``name``."""
    return "".join(word[0].upper() for word in name.split() if word)


def word_count(text):
    """Number of words separated by whitespace."""
    return len(text.split())


def repeat_word(word, times, sep=" "):
    """``word`` written ``times`` times, joined by ``sep``."""
    if times < 1:
        return ""
    return sep.join([word] * times)


def longest_word(text):
    """The longest word of ``text`` (the first one on a tie); empty for no words."""
    best = ""
    for word in text.split():
        if len(word) > len(best):
            best = word
    return best
