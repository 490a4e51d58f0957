"""The decisions behind a degrading install, on the text uv and pytest print (captured
from real runs): markers for the chosen interpreter, the distribution at fault, the
exception of the deepest frame, the next attempt, and when pytest itself is broken."""

from __future__ import annotations

from datetime import UTC, datetime

from codemill.core.records import ExecResult
from codemill.envs.builder.degrade import degrade, notes, summary
from codemill.envs.builder.plan import Attempt, BuildConfig, input_files, install_argv
from codemill.envs.builder.reasons import (
    deepest_exception,
    failed_distribution,
    telling_line,
)
from codemill.envs.builder.requirements import applicable, for_interpreter
from codemill.envs.builder.tooling import (
    pytest_broken,
    tooling_argv,
    tooling_cutoff,
    tooling_names,
)
from codemill.repos.detect.project import ProjectInfo

BUILD_FAILED = """Using Python 3.11.7 environment at: /env
error: Failed to build `lxml==4.2.0`
  cause: The build backend returned an error
  cause: Call to `setuptools.build_meta:__legacy__.build_wheel` failed (exit status: 1)

         [stderr]
         Traceback (most recent call last):
           File "<string>", line 14, in <module>
             requires = get_requires_for_build({})
           File "/opt/codemill/uv-cache/b/setuptools/build_meta.py", line 317, in run_setup
             exec(code, locals())  # noqa: S102 # exec is intentional here
             ~~~~^^^^^^^^^^^^^^^^
           File "<string>", line 5, in read_version
         KeyError: 'version'

hint: Build failures usually indicate a problem with the package or the build environment
"""

BOXED = """  × Failed to build `Foo_Bar==1.2`
  ├─▶ The build backend returned an error
  ╰─▶ Call to `setuptools.build_meta.build_wheel` failed (exit status: 1)
"""

PLUGIN = """Traceback (most recent call last):
  File "/env/lib/python3.13/site-packages/_pytest/config/__init__.py", line 604, in register
    plugin_name = super().register(plugin, name)
                  ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/env/lib/python3.13/site-packages/pluggy/_manager.py", line 448, in _verify_hook
    raise PluginValidationError(
pluggy._manager.PluginValidationError: Plugin '/repo/conftest.py' for hook 'pytest_collect_file'
hookimpl definition: pytest_collect_file(path, parent)
Argument(s) {'path'} are declared in the hookimpl but can not be found in the hookspec
"""


def test_markers_are_evaluated_for_the_chosen_interpreter() -> None:
    reqs = ('backports.zoneinfo; python_version < "3.9"', 'freezegun; python_version != "3.3"',
            'mock; python_version < "3"', 'pywin32; sys_platform == "win32"', "pytest>=6")
    kept, skipped = applicable(reqs, "3.8.10")
    assert kept == (reqs[0], reqs[1], reqs[4]) and skipped == (reqs[2], reqs[3])
    kept, _ = applicable(reqs, "3.12.1")
    assert kept == (reqs[1], reqs[4])  # not the host's Python: the venv's
    info, skipped = for_interpreter(ProjectInfo(test_requirements=reqs[:3]), "3.12.1")
    assert info.test_requirements == (reqs[1],) and skipped == (reqs[0], reqs[2])


def test_the_distribution_at_fault_and_the_deepest_exception() -> None:
    assert failed_distribution(BUILD_FAILED) == ("lxml", "4.2.0")
    assert failed_distribution(BOXED) == ("foo-bar", "1.2")
    assert failed_distribution("error: Failed to build `calc @ file:///repo`") == ("calc", "")
    assert failed_distribution("Resolved 3 packages") is None
    assert deepest_exception(BUILD_FAILED) == "KeyError: 'version'"  # no carets, no <string>
    plugin = deepest_exception(PLUGIN)
    assert plugin.startswith("pluggy._manager.PluginValidationError: Plugin '/repo/conftest.py'")
    assert "Argument(s) {'path'} are declared" in plugin
    assert plugin.endswith("(at /env/lib/python3.13/site-packages/pluggy/_manager.py:448)")
    own = ('Traceback (most recent call last):\n  File "/repo/tests/conftest.py", line 3, in '
           '<module>\n    import py\n  File "/env/lib/x.py", line 9, in f\n    g()\n'
           "    ~^^\nAttributeError: module 'py' has no attribute 'path'\n")
    assert deepest_exception(own) == ("AttributeError: module 'py' has no attribute 'path' "
                                      "(at /repo/tests/conftest.py:3)")
    assert deepest_exception("E   AssertionError\nno traceback here") == ""
    conftest = ("ImportError while loading conftest '/repo/conftest.py'.\nconftest.py:1: in "
                "<module>\n    import py\n        ^^\nE   ModuleNotFoundError: No module "
                "named 'py'\n")
    assert telling_line(conftest) == ("ImportError while loading conftest '/repo/conftest.py'."
                                      " ModuleNotFoundError: No module named 'py'")


PROJECT = ProjectInfo(name="calc", installable=True, test_extras=("test",),
                      test_requirements=("freezegun", "lxml==4.2.0"))
LATEST = Attempt("full, latest", False, None)
ERA = Attempt("full, as of 2019-03-02", False, "2019-03-02T00:00:00Z")


def test_a_failing_requirement_is_relaxed_once_then_dropped_alone() -> None:
    why = "building lxml==4.2.0 failed: KeyError: 'version'"
    first = {"lxml": why}
    step = degrade(LATEST, BUILD_FAILED, why, PROJECT, None, first)
    assert step is not None and step.attempt.excluded == ("lxml!=4.2.0",)
    # the constraint leaves no release: the resolver says so, and lxml goes alone
    conflict = ("error: No solution found when resolving dependencies:\n  cause: Because you "
                "require lxml==4.2.0 and lxml!=4.2.0, we can conclude that your requirements "
                "are unsatisfiable.\n")
    dropped = degrade(step.attempt, conflict, "dependency resolution failed", PROJECT, None,
                      first)
    assert dropped is not None and dropped.attempt.dropped == (("lxml", why),)
    assert dropped.attempt.excluded == ()
    assert summary(dropped.attempt) == "full, latest; without lxml"
    assert notes(dropped.attempt, first) == [f"without lxml ({why})"]
    argv = install_argv(PROJECT, dropped.attempt, BuildConfig())
    assert "lxml==4.2.0" not in argv and "freezegun" in argv
    assert argv[argv.index("--overrides") + 1] == "/opt/codemill/inputs/overrides.txt"
    assert input_files(dropped.attempt) == {"overrides.txt": 'lxml ; python_version < "0"\n'}


def test_the_other_release_is_of_the_era_or_the_newest() -> None:
    why = "building lxml==4.2.0 failed"
    era_date = "2019-03-02T00:00:00Z"
    on_today = degrade(LATEST, BUILD_FAILED, why, PROJECT, era_date)
    assert on_today is not None and on_today.attempt.exempt == (("lxml", era_date),)
    in_era = degrade(ERA, BUILD_FAILED, why, PROJECT, era_date)
    assert in_era is not None and in_era.attempt.exempt[0][0] == "lxml"
    assert in_era.attempt.exempt[0][1] > "2025-01-01"  # its newest release
    assert "lxml as of" in notes(in_era.attempt, {"lxml": why})[0]
    again = degrade(in_era.attempt, BUILD_FAILED, why, PROJECT, era_date)
    assert again is not None and again.attempt.dropped == (("lxml", why),)


def test_what_no_single_requirement_explains_is_not_degraded() -> None:
    own = "error: Failed to build `calc @ file:///repo`\n"
    assert degrade(LATEST, own, "x", PROJECT, None) is None  # the project itself
    assert degrade(LATEST, "error: Failed to fetch: `https://pypi.org/simple/x/`", "x",
                   PROJECT, None) is None
    conflict = ("No solution found when resolving dependencies:\nBecause freezegun==1.0 "
                "depends on python-dateutil>3 and calc depends on python-dateutil<2, ...")
    blamed = degrade(LATEST, conflict, "conflict", PROJECT, None)
    assert blamed is not None and blamed.attempt.dropped == (("freezegun", "conflict"),)
    inner = "No solution found when resolving dependencies:\nBecause calc depends on a>2 ..."
    assert degrade(LATEST, inner, "conflict", PROJECT, None) is None


def test_a_broken_pytest_and_the_tooling_of_the_snapshots_day() -> None:
    assert pytest_broken(ExecResult(exit_code=1, stderr=PLUGIN))
    assert pytest_broken(ExecResult(exit_code=3, stdout="INTERNALERROR> KeyError"))
    assert pytest_broken(ExecResult(exit_code=4, stdout="E   ModuleNotFoundError: No module "
                                    "named 'py'"))
    failing = ExecResult(exit_code=2, stdout="E   ModuleNotFoundError: No module named 'yaml'")
    assert not pytest_broken(failing)  # the project's import, not pytest
    assert not pytest_broken(ExecResult(exit_code=0, stdout="PytestRemovedIn9Warning: x"))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    config = BuildConfig()
    assert tooling_cutoff("2022-06-01T12:00:00+00:00", config, now) == "2022-06-02T12:00:00Z"
    assert tooling_cutoff("2018-05-01T00:00:00Z", config, now) == "2021-01-01T00:00:00Z"
    assert tooling_cutoff("2025-12-20T00:00:00Z", config, now) is None  # same tooling
    assert tooling_cutoff("", config, now) is None
    names = tooling_names("pytest==9.2.0\npytest_cov==6.0\nfreezegun==1.5\n# x\npluggy==1.7\n")
    assert names == ["pytest", "pluggy", "py", "iniconfig", "pytest-cov"]
    argv = tooling_argv(["uv", "pip", "install"], ["pytest"], "2022-06-02T12:00:00Z")
    assert argv[3:] == ["--exclude-newer-package", "pytest=2022-06-02T12:00:00Z",
                        "--reinstall-package", "pytest"]
