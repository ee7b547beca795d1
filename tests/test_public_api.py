"""The public API: every public module says what it exports, and every export says what it does."""

from __future__ import annotations

import importlib
import inspect
import sys

import pytest

import actorsim


def test_all_is_sorted() -> None:
    assert actorsim.__all__ == sorted(actorsim.__all__)


def test_everything_public_is_exported() -> None:
    """Every public name of the package namespace is in __all__ and resolves."""
    public = {name for name in vars(actorsim) if not name.startswith("_")}
    submodules = {"agents", "cli", "export", "llm", "memory", "routing", "runs", "task_center", "tools", "transport",
                  "ui"}
    assert public - submodules == set(actorsim.__all__)
    for name in actorsim.__all__:
        assert getattr(actorsim, name) is not None


PUBLIC_MODULES = [
    "actorsim",
    "actorsim.agents",
    "actorsim.cli",
    "actorsim.export",
    "actorsim.llm",
    "actorsim.memory",
    "actorsim.routing",
    "actorsim.runs",
    "actorsim.task_center",
    "actorsim.tools",
    "actorsim.transport",
    "actorsim.ui",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_module_says_what_it_exports(name: str) -> None:
    """Each public module has a sorted `__all__` whose names all resolve."""
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    assert all(hasattr(module, item) for item in exported)


def _documented(module_name: str) -> list[str]:
    """The public classes, functions and methods of a module's `__all__` that have no docstring of their own."""
    module = importlib.import_module(module_name)
    missing = []
    for name in module.__all__:
        item = getattr(module, name)
        if not (inspect.isclass(item) or inspect.isfunction(item)):
            continue
        if not inspect.getdoc(item):
            missing.append(f"{module_name}.{name}")
        if inspect.isclass(item):
            for attribute, member in vars(item).items():
                function = member.fget if isinstance(member, property) else member
                if attribute.startswith("_") or not (inspect.isfunction(function) or isinstance(member, property)):
                    continue
                if not inspect.getdoc(getattr(item, attribute)):  # an override may share its base's docstring
                    missing.append(f"{module_name}.{name}.{attribute}")
    return missing


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_every_public_class_and_method_has_a_docstring(name: str) -> None:
    assert _documented(name) == []


def test_every_exception_lives_in_errors() -> None:
    """One module holds every exception actorsim defines, so its docstring can draw the whole hierarchy."""
    errors = importlib.import_module("actorsim._errors")
    defined_elsewhere = []
    for module_name in sorted(sys.modules):
        if not module_name.startswith("actorsim") or module_name == "actorsim._errors":
            continue
        for name, item in vars(sys.modules[module_name]).items():
            if inspect.isclass(item) and issubclass(item, BaseException) and item.__module__ == module_name:
                defined_elsewhere.append(f"{module_name}.{name}")
    assert defined_elsewhere == []
    drawn = errors.__doc__ or ""
    for name, item in vars(errors).items():
        if inspect.isclass(item) and issubclass(item, BaseException) and item.__module__ == errors.__name__:
            assert name in drawn, f"{name} is missing from the hierarchy in actorsim._errors"
