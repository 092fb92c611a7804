from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

FIXTURES = ROOT / "fixtures"
REAL = FIXTURES / "valkey-9.1.2"


@pytest.fixture
def real_fixtures() -> Path:
    return REAL
