"""Shared pytest fixtures."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hubserver import HubServer, run_hub


@pytest.fixture
def hub() -> Iterator[HubServer]:
    """A fake Hugging Face Hub on 127.0.0.1 (see tests/hubserver.py); pass ``endpoint=hub.endpoint``."""
    with run_hub() as server:
        yield server
