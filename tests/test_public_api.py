"""The public API: `actorsim.__all__` is sorted, complete and importable."""

from __future__ import annotations

import actorsim


def test_all_is_sorted() -> None:
    assert actorsim.__all__ == sorted(actorsim.__all__)


def test_everything_public_is_exported() -> None:
    """Every public name of the package namespace is in __all__ and resolves."""
    public = {name for name in vars(actorsim) if not name.startswith("_")}
    submodules = {"agents", "cli", "llm", "memory", "runs", "task_center", "tools", "transport", "ui"}
    assert public - submodules == set(actorsim.__all__)
    for name in actorsim.__all__:
        assert getattr(actorsim, name) is not None
