"""Ordered, bounded parallel map over a stream: the reading half of batch prediction.

:func:`bounded_map` runs a function over an iterable in a thread pool, yields outcomes in
input order, and never holds more than ``in_flight`` items at once, so a million-file folder
streams in constant memory. Exceptions are captured per item (one bad file never stops a
batch). Threads suit the work here: file reading, pydicom/wfdb parsing and scipy filtering
release the GIL for much of their time, and onnxruntime releases it while it runs.

Example:
    >>> [outcome.value for outcome in bounded_map(lambda x: x * x, range(5), workers=2)]
    [0, 1, 4, 9, 16]
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterable, Iterator, TypeVar

__all__ = ["Outcome", "bounded_map"]

Item = TypeVar("Item")
Value = TypeVar("Value")


@dataclass(frozen=True)
class Outcome(Generic[Item, Value]):
    """The result of one item: its value, or the exception it raised.

    Example:
        >>> Outcome(item="a.hea", value=None, error=ValueError("bad")).ok
        False
    """

    item: Item
    value: Value | None = None
    error: Exception | None = None

    @property
    def ok(self) -> bool:
        """Whether the call returned without an exception."""
        return self.error is None


def _capture(function: Callable[[Any], Any], item: Any) -> Outcome[Any, Any]:
    try:
        return Outcome(item=item, value=function(item))
    except Exception as error:  # captured per item on purpose; the caller decides
        return Outcome(item=item, error=error)


def bounded_map(function: Callable[[Item], Value], items: Iterable[Item], *, workers: int = 2,
                in_flight: int | None = None) -> Iterator[Outcome[Item, Value]]:
    """Apply ``function`` to each item in a thread pool; yield outcomes in input order.

    Args:
        function: Called once per item.
        items: Any iterable, consumed lazily.
        workers: Threads; 1 or less runs in the calling thread.
        in_flight: Most items submitted but not yet yielded (default ``2 * workers``).

    Example:
        >>> [outcome.ok for outcome in bounded_map(lambda x: 1 / x, [1, 0], workers=1)]
        [True, False]
    """
    if workers <= 1:
        for item in items:
            yield _capture(function, item)
        return
    limit = max(1, in_flight if in_flight is not None else 2 * workers)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mayo-dx") as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(_capture, function, item))
            if len(pending) >= limit:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
