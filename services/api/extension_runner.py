"""strawberry's schema-extension hooks, entered without rebuilding them on every request.

For each phase of a request (operation, parsing, validation, execution) strawberry's
``SchemaExtensionsRunner`` builds a context manager that, for every extension, looks its
hook up, asks ``inspect`` what kind of function it is, wraps the bound method with
``contextlib.contextmanager`` (a new decorated function, with ``functools.wraps``, each
time) and enters it on an ``AsyncExitStack``. For a trivial request that was about a third
of strawberry's own time (docs/performance.md, "Seventh pass").

``LeanExtensionsRunner`` decides once per extension class and hook what to enter: the
same ``contextlib.contextmanager`` of the same hook function, called with the extension
(so the generator runs, and sees exceptions, exactly as strawberry's wrapper would make
it), entered in the extensions' order on an ``ExitStack`` and left in reverse; like
strawberry's, a phase never suppresses an exception (a hook that swallows one does not
stop it), and it works in ``execute_sync`` too. A phase in which any extension's hook is not a plain
generator function (an async generator, or a plain callable) is left to strawberry's own
context manager, unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, Final

from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner

# What a hook needs: nothing (the extension does not override it), a context manager
# factory taking the extension, or strawberry's own machinery (anything else).
_NONE: Final = "none"
_OTHER: Final = "other"


@functools.lru_cache(maxsize=512)
def _hook_of(cls: Any, name: str) -> Any:
    fn = getattr(cls, name)
    if fn is getattr(SchemaExtension, name):
        return _NONE
    if inspect.isgeneratorfunction(fn):
        return contextlib.contextmanager(fn)
    return _OTHER


class _LeanPhase:
    """One phase's hooks as an async context manager (every hook a plain generator)."""

    __slots__ = ("_managers", "_stack")

    def __init__(self, managers: list[contextlib.AbstractContextManager[Any]]) -> None:
        self._managers = managers
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> None:
        self._stack.__enter__()
        for manager in self._managers:
            self._stack.enter_context(manager)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        # As strawberry's: the hooks are left, and what they did not handle goes on.
        self._stack.__exit__(exc_type, exc_val, exc_tb)

    async def __aenter__(self) -> None:
        self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_val: BaseException | None,
        exc_tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc_val, exc_tb)


class LeanExtensionsRunner(SchemaExtensionsRunner):
    """strawberry's runner with the per-phase context managers built from hooks decided
    once per extension class (see the module's docstring)."""

    def _phase(self, name: str, strawberry_manager: Callable[[], Any]) -> Any:
        managers = []
        for extension in self.extensions:
            cls: Any = type(extension)
            hook = _hook_of(cls, name)
            if hook is _NONE:
                continue
            if hook is _OTHER:
                return strawberry_manager()
            managers.append(hook(extension))
        return _LeanPhase(managers)

    def operation(self) -> Any:
        return self._phase("on_operation", super().operation)

    def validation(self) -> Any:
        return self._phase("on_validate", super().validation)

    def parsing(self) -> Any:
        return self._phase("on_parse", super().parsing)

    def executing(self) -> Any:
        return self._phase("on_execute", super().executing)


__all__ = ["LeanExtensionsRunner"]
