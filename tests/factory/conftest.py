"""A real ledger in a temp dir for the factory's tests."""

import pytest

from codemill.core.config import Settings


@pytest.fixture
def settings(tmp_path):
    return Settings(home=tmp_path / ".codemill", executor={"workers": 2})


@pytest.fixture
def ledger(settings):
    from codemill.store.ledger import Ledger

    with Ledger.open(settings) as led:
        yield led
