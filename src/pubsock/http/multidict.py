"""Read-only multi-valued mappings: request headers and query parameters."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping

__all__ = ["MultiDict", "Headers", "QueryParams"]


class MultiDict(Mapping[str, str]):
    """An ordered mapping whose keys may repeat.

    ``m[key]`` and ``m.get(key)`` give the first value; ``get_all(key)`` gives
    every value in order; ``multi_items()`` gives every pair as received.
    """

    __slots__ = ("_items", "_index")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items = list(items)
        self._index: dict[str, list[str]] | None = None

    @staticmethod
    def _key(name: str) -> str:
        return name

    def _lookup(self) -> dict[str, list[str]]:
        index = self._index
        if index is None:
            index = {}
            for name, value in self._items:
                index.setdefault(self._key(name), []).append(value)
            self._index = index
        return index

    def __getitem__(self, name: str) -> str:
        return self._lookup()[self._key(name)][0]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) in self._lookup()

    def __iter__(self) -> Iterator[str]:
        return iter(self._lookup())

    def __len__(self) -> int:
        return len(self._lookup())

    def get_all(self, name: str) -> list[str]:
        """Return every value of ``name``, in order; ``[]`` if absent."""
        return list(self._lookup().get(self._key(name), ()))

    def multi_items(self) -> list[tuple[str, str]]:
        """Return every ``(name, value)`` pair, in order, names as received."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items!r})"


class Headers(MultiDict):
    """HTTP headers: names compare case-insensitively and iterate lower-cased."""

    __slots__ = ()

    @staticmethod
    def _key(name: str) -> str:
        return name.lower()


class QueryParams(MultiDict):
    """The decoded query string of a request URL."""

    __slots__ = ()
