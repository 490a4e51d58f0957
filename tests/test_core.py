"""Content ids, settings precedence and the error boundary."""

import pytest

from codemill.core.boundary import boundary
from codemill.core.config import load_settings
from codemill.core.errors import ConfigError
from codemill.core.ids import canonical_json, content_id, new_run_id
from codemill.core.records import SamplingConfig


def test_content_id_is_canonical():
    assert content_id({"a": 1, "b": [1, 2]}) == content_id({"b": (1, 2), "a": 1})
    assert content_id({"a": 1}) != content_id({"a": 2})
    assert canonical_json(SamplingConfig(seed=3)) == canonical_json(SamplingConfig(seed=3))
    assert len(content_id("x")) == 64
    with pytest.raises(ValueError):
        content_id(float("nan"))


def test_run_ids_are_unique():
    assert len({new_run_id() for _ in range(100)}) == 100


def test_settings_toml_then_env(tmp_path, monkeypatch):
    cfg = tmp_path / "codemill.toml"
    cfg.write_text(
        'home = "h"\n[catalog]\nuri = "sqlite:///from-toml.db"\n[writer]\nbatch_rows = 7\n'
    )
    s = load_settings(cfg)
    assert s.catalog.uri == "sqlite:///from-toml.db" and s.writer.batch_rows == 7
    monkeypatch.setenv("CODEMILL_CATALOG__URI", "postgresql://u@db/codemill")
    monkeypatch.setenv("CODEMILL_WRITER__BATCH_ROWS", "9")
    s = load_settings(cfg)
    assert s.catalog.uri == "postgresql://u@db/codemill" and s.writer.batch_rows == 9
    assert s.home.name == "h"


def test_settings_errors_are_one_line(tmp_path):
    bad = tmp_path / "codemill.toml"
    bad.write_text("home = [")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad)
    bad.write_text("[writer]\nbatch_rows = 'many'\n")
    with pytest.raises(ConfigError, match="writer.batch_rows"):
        load_settings(bad)
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "missing.toml")


def test_boundary_turns_failure_into_data():
    with boundary("sandbox", "run tests") as b:
        raise OSError("disk gone")
    assert b.failed and b.error_type == "sandbox:OSError" and "disk gone" in b.message
    with boundary("model", "complete") as ok:
        pass
    assert not ok.failed
