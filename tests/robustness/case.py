"""One robustness case: what a hostile but realistic user does, and what must happen."""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class Case:
    """`check(tmp_path)` does the thing and asserts `expected` (the report's text)."""

    category: str
    name: str
    expected: str
    check: Callable[[Path], None]

    def __str__(self) -> str:  # the test id
        return self.name


def raises(error: type[BaseException], *fragments: str) -> AbstractContextManager:
    """Expect `error` whose message holds every fragment (literally, in any order)."""
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(error, match=re.compile(pattern, re.S))
