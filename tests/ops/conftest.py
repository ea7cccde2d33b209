"""Every op test runs twice: through the interpreter's fast paths and through its plain path."""

import pytest


@pytest.fixture(autouse=True)
def _both_reference_modes(reference_mode: str) -> str:
    return reference_mode
