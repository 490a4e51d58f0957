from textkit import (
    count_vowels,
    initials,
    is_palindrome,
    longest_word,
    pad_left,
    repeat_word,
    truncate,
    word_count,
)


def test_truncate_keeps_short_text():
    assert truncate("hello", 5) == "hello"
    assert truncate("hi", 10) == "hi"


def test_truncate_cuts_long_text():
    assert truncate("hello world", 8) == "hello..."
    assert truncate("abcdefgh", 6, suffix="~") == "abcde~"


def test_count_vowels():
    assert count_vowels("Hello World") == 3
    assert count_vowels("AEIOU") == 5
    assert count_vowels("rhythm") == 0


def test_is_palindrome():
    assert is_palindrome("Never odd or even")
    assert is_palindrome("abba")
    assert not is_palindrome("abc")


def test_pad_left():
    assert pad_left("7", 3, "0") == "007"
    assert pad_left("abc", 5) == "  abc"
    assert pad_left("abcdef", 3) == "abcdef"
    assert pad_left("abc", 3) == "abc"


def test_initials():
    assert initials("ada lovelace") == "AL"
    assert initials("  grace   brewster hopper ") == "GBH"


def test_word_count():
    assert word_count("one two  three") == 3
    assert word_count("") == 0


def test_repeat_word():
    assert repeat_word("ha", 3) == "ha ha ha"
    assert repeat_word("x", 2, sep="-") == "x-x"
    assert repeat_word("x", 1) == "x"
    assert repeat_word("x", 0) == ""


def test_longest_word():
    assert longest_word("a bb ccc dd") == "ccc"
    assert longest_word("ab cd") == "ab"
    assert longest_word("") == ""
