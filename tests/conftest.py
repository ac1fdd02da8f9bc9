"""Shared fixtures. Real data lives in ../shared/data (never copied into the repo); tests that need it skip
with a clear reason when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (expected ../shared/data beside the repo)")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    return _need(SHARED_DATA)


@pytest.fixture(scope="session")
def w300_root(shared_data: Path) -> Path:
    return _need(shared_data / "300w")


@pytest.fixture(scope="session")
def fixtures_root(shared_data: Path) -> Path:
    return _need(shared_data / "fixtures")
