"""name -> Method class. Filled by the @register decorator on each method class."""
from __future__ import annotations

from core.interface import Method

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _load_all() -> None:
    import core.methods  # noqa: F401  (importing registers every method)


def method_names() -> list[str]:
    _load_all()
    return sorted(_REGISTRY)


def get_method(name: str) -> Method:
    _load_all()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise KeyError(f"unknown method {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def list_methods(memory_budget_bytes: int | None = None) -> list[dict]:
    _load_all()
    return [_REGISTRY[name].describe(memory_budget_bytes) for name in sorted(_REGISTRY)]
