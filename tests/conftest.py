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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--fuzz-long",
        action="store_true",
        default=False,
        help="run the fuzz tests (tests/test_fuzz_*.py) with 20x more cases",
    )
