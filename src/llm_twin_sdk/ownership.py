"""Who closes what: the one ownership rule of the SDK (docs/architecture.md, "Ownership").

An object handed to another — a backend to a client, a client to a twin, a store to a
pipeline — is *borrowed*: closing the borrower leaves it open, and whoever created it closes
it. A factory (``from_settings``, ``from_twin``, ``TwinDeployment.up``...) creates what it
builds, so the object it returns *owns* those parts and closes them with itself::

    backend = LocalBackend()
    with InferenceClient(backend) as client:      # borrows: the backend stays open
        client.generate("Hi")
    backend.close()                                # its creator closes it

    with LLMTwin.from_settings() as twin:          # owns the client and the pipeline it built
        twin.ask("...")
"""

from __future__ import annotations

import asyncio
from typing import Protocol

__all__ = ["AsyncCloseable", "Closeable", "Owner"]


class Closeable(Protocol):
    def close(self) -> None: ...


class AsyncCloseable(Protocol):
    async def aclose(self) -> None: ...


class Owner:
    """Keeps the parts an object created, and closes them (last created, first closed)."""

    _owned: tuple[Closeable | AsyncCloseable, ...] = ()

    def _own(self, *parts: Closeable | AsyncCloseable) -> None:
        """Mark ``parts`` as created by this object: :meth:`_close_owned` closes them."""
        self._owned = (*self._owned, *parts)

    def _close_owned(self) -> None:
        """Close every owned part, even when one fails (the first error is raised); every
        part of a sync owner has ``close``."""
        owned, self._owned = self._owned, ()
        error: BaseException | None = None
        for part in reversed(owned):
            try:
                part.close()  # type: ignore[union-attr]  # sync owners own sync parts only
            except BaseException as exc:  # close the rest, then raise the first
                error = error or exc
        if error is not None:
            raise error

    async def _aclose_owned(self) -> None:
        """:meth:`_close_owned` for async code: a part's ``aclose`` is awaited when it has
        one, its ``close`` runs in a thread otherwise (a model may wait for a generation)."""
        owned, self._owned = self._owned, ()
        error: BaseException | None = None
        for part in reversed(owned):
            try:
                if hasattr(part, "aclose"):
                    await part.aclose()
                else:
                    await asyncio.to_thread(part.close)
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
