"""Fixtures that write a config into a temporary directory and load it from there,
so that problems read `agent.yaml:LINE:COL: ...` whatever the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from config.loader import LoadedConfig, load_config
from domain.errors import ConfigInvalid


@pytest.fixture
def write(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., str]:
    monkeypatch.chdir(tmp_path)

    def write(text: str, name: str = "agent.yaml") -> str:
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_text(text, encoding="utf-8")
        return name

    return write


@pytest.fixture
def load(write: Callable[..., str]) -> Callable[..., LoadedConfig]:
    def load(text: str, **kwargs: Any) -> LoadedConfig:
        return load_config(write(text), **kwargs)

    return load


@pytest.fixture
def problems(write: Callable[..., str]) -> Callable[..., list[str]]:
    """Every problem (errors and warnings) of a config that must not load, as printed."""

    def problems(text: str, **kwargs: Any) -> list[str]:
        with pytest.raises(ConfigInvalid) as caught:
            load_config(write(text), **kwargs)
        return [str(p) for p in caught.value.problems]

    return problems
