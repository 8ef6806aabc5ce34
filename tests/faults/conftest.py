from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _cache(isolated_cache):
    """Fault tests cache under the session's temporary directory."""
