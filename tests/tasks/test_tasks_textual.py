"""Feature cuts, problem statements and dependency comparison: pure functions over text."""

import ast

from codemill.core.records import Message, ModelReply
from codemill.tasks.deps import deps_changed
from codemill.tasks.features import call_sites, feature_cuts
from codemill.tasks.patches import make_diff
from codemill.tasks.statements import (
    failure_statement,
    feature_statement,
    forbidden_lines,
    leaks,
    rewrite,
)

MOD = '''def parse(text: str) -> list[int]:
    """Split a comma separated list of integers."""
    # strip spaces first
    parts = [p.strip() for p in text.split(",")]
    return [int(p) for p in parts if p]


class Acc:
    def add(self, x):
        self.total = getattr(self, "total", 0) + x
        return self.total


def stub():
    pass
'''


def test_stub_body_keeps_signature_and_docstring_and_drops_the_body():
    cuts = {c.function: c for c in feature_cuts("m.py", MOD)}
    assert set(cuts) == {"parse", "Acc.add"}  # `stub` has nothing to implement
    new = cuts["parse"].new_source
    ast.parse(new)
    assert 'def parse(text: str) -> list[int]:\n    """Split a comma' in new
    assert "raise NotImplementedError" in new
    assert "strip spaces" not in new and "int(p)" not in new
    assert "class Acc" in new and cuts["parse"].n_body_lines == 2


def test_remove_function_deletes_the_definition():
    cuts = {c.function: c for c in feature_cuts("m.py", MOD, kinds=("remove_function",))}
    new = cuts["Acc.add"].new_source
    tree = ast.parse(new)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef))
    assert isinstance(cls.body[0], ast.Pass)  # only child: replaced by `pass`
    assert "def add" not in new and "def parse" in new


def test_call_sites_come_from_sources():
    sites = call_sites("parse", {"m.py": MOD, "cli.py": "from m import parse\nparse('1,2')\n"})
    assert sites == ["cli.py:2: parse('1,2')"]


def test_failure_statement_hides_the_fix_and_hidden_test_code():
    gold = make_diff({"m.py": b"def f(a):\n    return a + 1\n"},
                     {"m.py": b"def f(a):\n    return a + 2\n"})
    hidden = "def test_f():\n    assert f(1) == 3, 'f adds two'\n"
    forbidden = forbidden_lines(gold, [hidden])
    msg = ("AssertionError: f adds two\nassert 2 == 3\n +  where 2 = f(1)\n"
           "    assert f(1) == 3, 'f adds two'\nm.py:2: in f\n    return a + 2")
    text = failure_statement({"tests/test_m.py::test_f": msg}, forbidden=forbidden,
                             commit_message="Fix: return a + 2 instead")
    assert "tests/test_m.py::test_f" in text and "assert 2 == 3" in text
    assert leaks(text, forbidden) == []
    assert "return a + 2" not in text and "where 2 = f(1)" not in text
    assert "Fix:" not in text  # the commit message leaked code, so it was left out
    ok = failure_statement({"t::x": "boom"}, forbidden=forbidden,
                           commit_message="Handle empty input in f")
    assert ok.startswith("Handle empty input in f")


def test_failure_statement_stays_short_when_a_test_id_or_message_is_huge():
    # a parametrized test whose id holds a generated regex (natsort's, ~27k characters)
    # once made a patch-mode prompt larger than the model's whole context
    regex = "(\\d+|[" + "".join(chr(0x2070 + i % 64) for i in range(20_000)) + "])"
    failures = {f"tests/test_regex.py::test_regex_chooser[{n}-{regex}]": "x" * 9_000
                for n in range(10)}
    text = failure_statement(failures, forbidden=set())
    assert len(text) < 5 * 2 * 400 + 500
    assert "tests/test_regex.py::test_regex_chooser[0-" in text
    assert "more characters)" in text and "* ... and 5 more" in text


def test_feature_statement_names_signature_docstring_and_callers():
    text = feature_statement(module="pkg.m", qualname="parse", signature="def parse(text)",
                             docstring="Split.", call_sites=["cli.py:2: parse('1')"],
                             removed_whole=False)
    assert "`pkg.m.parse`" in text and "def parse(text):" in text and "cli.py:2" in text


class EchoModel:
    """A scripted backend: answers with a fixed text."""

    name = "echo"

    def __init__(self, answer):
        self.answer = answer

    def complete(self, messages, *, tools=None, sampling=None):
        return ModelReply(message=Message(role="assistant", content=self.answer))


def test_model_rewrite_is_kept_only_when_it_does_not_leak():
    forbidden = {"return a + 2"}
    assert rewrite("draft", EchoModel("A clean issue."), forbidden) == "A clean issue.\n"
    assert rewrite("draft", EchoModel("Try `return a + 2`"), forbidden) == "draft"
    assert rewrite("draft", EchoModel(""), forbidden) == "draft"


def test_deps_compare_declared_requirements_not_bytes():
    before = {"pyproject.toml": b'[project]\nname="x"\nversion="1"\ndependencies=["a>=1"]\n',
              "requirements.txt": b"a>=1\n# c\nb\n"}
    bump = {"pyproject.toml": b'[project]\nname="x"\nversion="2"\ndependencies=["a>=1"]\n',
            "requirements.txt": b"b\na >= 1\n"}
    assert deps_changed(before, bump) == []
    more = dict(bump, **{"pyproject.toml": b'[project]\ndependencies=["a>=2"]\n'})
    assert deps_changed(before, more) == ["pyproject.toml"]
    assert deps_changed({}, {"setup.py": b"setup(install_requires=['x'])"}) == ["setup.py"]
    assert deps_changed({"README.md": b"a"}, {"README.md": b"b"}) == []
