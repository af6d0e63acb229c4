"""A small model registry: names are the currency of mayo-dx.

A model's registry name appears unchanged in configs, cards, artifact file names, tool output
and tests. Factories register themselves with :func:`register_model`; nothing here imports a
deep-learning framework, so the runtime layer can list names without torch.

Example:
    >>> from mayo_dx.registry import register_model, get_model, list_models
    >>> @register_model("tiny_example", task="example", description="doc example")
    ... def build_tiny(labels):
    ...     return {"labels": labels}
    >>> get_model("tiny_example").factory(["A"])
    {'labels': ['A']}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from mayo_dx.errors import ModelNotFound

__all__ = ["RegisteredModel", "get_model", "list_models", "register_model"]


@dataclass(frozen=True)
class RegisteredModel:
    """A registry entry: the name, the task it serves, and the factory that builds it."""

    name: str
    task: str
    factory: Callable[..., Any]
    description: str = ""


_REGISTRY: dict[str, RegisteredModel] = {}


def register_model(name: str, *, task: str, description: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a model factory under ``name`` (decorator).

    Args:
        name: Registry name, lower-case with underscores (e.g. ``"xresnet1d101"``).
        task: The task family the model serves (e.g. ``"ecg"``, ``"ct"``).
        description: One line for ``mayo-dx models`` and tool listings.

    Returns:
        A decorator that stores the factory and returns it unchanged.

    Raises:
        ValueError: If ``name`` is already registered to a different factory.

    Example:
        >>> @register_model("doc_demo_net", task="example")
        ... def build(labels):
        ...     return len(labels)
    """

    def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
        existing = _REGISTRY.get(name)
        if existing is not None and existing.factory is not factory:
            same_origin = (
                getattr(existing.factory, "__qualname__", None) == getattr(factory, "__qualname__", None)
                and getattr(existing.factory, "__module__", None) == getattr(factory, "__module__", None)
            )
            if not same_origin:
                raise ValueError(f"model name {name!r} is already registered")
        _REGISTRY[name] = RegisteredModel(name=name, task=task, factory=factory, description=description)
        return factory

    return decorator


def get_model(name: str) -> RegisteredModel:
    """Return the registry entry for ``name``.

    Raises:
        ModelNotFound: If nothing is registered under ``name``; the message lists what is.

    Example:
        >>> get_model("no_such_model")
        Traceback (most recent call last):
        ...
        mayo_dx.errors.ModelNotFound: no model named 'no_such_model'; registered: ...
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        raise ModelNotFound(f"no model named {name!r}; registered: {known}") from None


def list_models(task: str | None = None) -> list[str]:
    """Return the sorted registered names, optionally only those of one task.

    Example:
        >>> isinstance(list_models(), list)
        True
    """
    return sorted(name for name, entry in _REGISTRY.items() if task is None or entry.task == task)
