"""The project's pytest configuration and the plugins it needs.

pytest reads the first of ``pytest.ini``, ``.pytest.ini``, ``pyproject.toml``
(``[tool.pytest.ini_options]`` or ``[tool.pytest]``), ``tox.ini`` (``[pytest]``) and
``setup.cfg`` (``[tool:pytest]``); so do we. Options in ``addopts`` and ini keys that only a
plugin understands (``--cov``, ``timeout = 10``, ``asyncio_mode``) make collection fail when
the plugin is missing, so they map to the distributions to install.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from codemill.repos.detect.files import (
    as_dict,
    read_ini,
    read_toml,
    valid_requirement,
)

OPTION_PLUGINS: tuple[tuple[str, str], ...] = (
    ("--cov", "pytest-cov"), ("--no-cov", "pytest-cov"),
    ("--timeout", "pytest-timeout"),
    ("--numprocesses", "pytest-xdist"), ("--dist", "pytest-xdist"), ("-n", "pytest-xdist"),
    ("--maxprocesses", "pytest-xdist"), ("--looponfail", "pytest-xdist"),
    ("--benchmark", "pytest-benchmark"),
    ("--mypy", "pytest-mypy"), ("--flake8", "pytest-flake8"), ("--black", "pytest-black"),
    ("--isort", "pytest-isort"), ("--pep8", "pytest-pep8"), ("--pylint", "pytest-pylint"),
    ("--pycodestyle", "pytest-pycodestyle"), ("--codestyle", "pytest-codestyle"),
    ("--flakes", "pytest-flakes"), ("--pydocstyle", "pytest-pydocstyle"),
    ("--doctest-rst", "pytest-doctestplus"), ("--doctest-plus", "pytest-doctestplus"),
    ("--asyncio-mode", "pytest-asyncio"),
    ("--reruns", "pytest-rerunfailures"), ("--only-rerun", "pytest-rerunfailures"),
    ("--randomly", "pytest-randomly"), ("--html", "pytest-html"),
    ("--hypothesis", "hypothesis"), ("--mpl", "pytest-mpl"),
    ("--ds", "pytest-django"), ("--reuse-db", "pytest-django"),
    ("--nomigrations", "pytest-django"), ("--create-db", "pytest-django"),
    ("--remote-data", "pytest-remotedata"), ("--disable-socket", "pytest-socket"),
    ("--allow-hosts", "pytest-socket"), ("--block-network", "pytest-recording"),
    ("--record-mode", "pytest-recording"), ("--snapshot-update", "syrupy"),
    ("--instafail", "pytest-instafail"), ("--count", "pytest-repeat"),
    ("--memray", "pytest-memray"), ("--mypy-ini-file", "pytest-mypy"),
    ("--check-links", "pytest-check-links"), ("--nbval", "nbval"),
    ("--forked", "pytest-forked"), ("--env", "pytest-env"),
)
"""Command-line option prefixes (in ``addopts``) and the distribution that defines them."""

INI_PLUGINS: tuple[tuple[str, str], ...] = (
    ("asyncio_mode", "pytest-asyncio"), ("asyncio_default_fixture_loop_scope", "pytest-asyncio"),
    ("timeout", "pytest-timeout"), ("timeout_method", "pytest-timeout"),
    ("django_settings_module", "pytest-django"), ("django_find_project", "pytest-django"),
    ("env", "pytest-env"), ("mock_use_standalone_module", "pytest-mock"),
    ("doctest_plus", "pytest-doctestplus"), ("doctest_rst", "pytest-doctestplus"),
    ("remote_data_strict", "pytest-remotedata"), ("qt_api", "pytest-qt"),
    ("trio_mode", "pytest-trio"), ("flake8-max-line-length", "pytest-flake8"),
    ("flake8-ignore", "pytest-flake8"), ("mypy-ini-file", "pytest-mypy"),
    ("looponfailroots", "pytest-xdist"), ("rsyncdirs", "pytest-xdist"),
    ("mpl-baseline-path", "pytest-mpl"), ("cov_fail_under", "pytest-cov"),
)
"""Ini keys (lower case) that only a plugin declares; pytest rejects or ignores them
otherwise, and ``--strict-config`` turns the latter into an error."""

PLUGIN_MODULES = {
    "pytest_cov": "pytest-cov", "xdist": "pytest-xdist", "pytest_mock": "pytest-mock",
    "pytest_asyncio": "pytest-asyncio", "pytest_timeout": "pytest-timeout",
    "randomly": "pytest-randomly", "pytest_randomly": "pytest-randomly",
    "pytest_benchmark": "pytest-benchmark", "pytest_django": "pytest-django",
    "anyio": "anyio", "trio": "pytest-trio", "pytest_trio": "pytest-trio",
    "hypothesis": "hypothesis", "pytester": "", "doctest": "", "no:cacheprovider": "",
}
"""``-p NAME`` / ``pytest_plugins`` module names and their distributions ('' = builtin)."""


@dataclass
class PytestConfig:
    """The ini options of the project's pytest configuration."""

    file: str = ""
    options: dict[str, str] = field(default_factory=dict)
    plugin_requirements: set[str] = field(default_factory=set)

    @property
    def testpaths(self) -> list[str]:
        return self.options.get("testpaths", "").split()

    @property
    def addopts(self) -> str:
        return self.options.get("addopts", "")


def _options_from_toml(table: dict[str, object]) -> dict[str, str]:
    out = {}
    for key, value in table.items():
        if isinstance(value, list):
            out[key.lower()] = "\n".join(str(v) for v in value) if key == "filterwarnings" \
                else " ".join(str(v) for v in value)
        else:
            out[key.lower()] = str(value)
    return out


def read_pytest_config(root: Path) -> PytestConfig:
    """The first pytest configuration pytest itself would pick in ``root``."""
    for name in ("pytest.ini", ".pytest.ini"):
        ini = read_ini(root, name)
        if ini is not None and ini.has_section("pytest"):
            return _with_plugins(PytestConfig(name, {k.lower(): v for k, v in ini.items("pytest")}))
    tool = as_dict(read_toml(root, "pyproject.toml").get("tool"))
    pytest_tool = as_dict(tool.get("pytest"))
    table = as_dict(pytest_tool.get("ini_options")) or \
        {k: v for k, v in pytest_tool.items() if k != "ini_options"}
    if table:
        return _with_plugins(PytestConfig("pyproject.toml", _options_from_toml(table)))
    for name, section in (("tox.ini", "pytest"), ("setup.cfg", "tool:pytest")):
        ini = read_ini(root, name)
        if ini is not None and ini.has_section(section):
            return _with_plugins(PytestConfig(name, {k.lower(): v for k, v in ini.items(section)}))
    return PytestConfig()


def plugins_for_options(addopts: str) -> set[str]:
    """Distributions needed by the options in an ``addopts`` string."""
    try:
        words = shlex.split(addopts.replace("\n", " "))
    except ValueError:
        words = addopts.split()
    needed: set[str] = set()
    for i, word in enumerate(words):
        if word == "-p" and i + 1 < len(words):
            needed.add(PLUGIN_MODULES.get(words[i + 1], ""))
        elif word.startswith("-p") and len(word) > 2 and not word.startswith("-p="):
            needed.add(PLUGIN_MODULES.get(word[2:], ""))
        for prefix, dist in OPTION_PLUGINS:
            if prefix == "-n":
                if re.fullmatch(r"-n(\d+|auto|logical)?", word):
                    needed.add(dist)
            elif word == prefix or word.startswith(prefix + "=") or word.startswith(prefix + "-"):
                needed.add(dist)
    needed.discard("")
    return needed


def _with_plugins(cfg: PytestConfig) -> PytestConfig:
    cfg.plugin_requirements |= plugins_for_options(cfg.addopts)
    for key, dist in INI_PLUGINS:
        if key in cfg.options:
            cfg.plugin_requirements.add(dist)
    for req in cfg.options.get("required_plugins", "").split():
        if (valid := valid_requirement(req)) is not None:
            cfg.plugin_requirements.add(valid)
    return cfg

