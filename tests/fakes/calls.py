"""AWSCalls: the operation names of every AWS request that reached the wire, in order, recorded
from botocore's ``before-send`` events (moto or a real endpoint behind the client).

Example: ``calls = AWSCalls.on(aws.client("sagemaker")); ...; assert calls.writes == []``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

__all__ = ["WRITE_PREFIXES", "AWSCalls"]

WRITE_PREFIXES = ("Create", "Update", "Delete", "Add", "Put", "Register", "Deregister")


@dataclass
class AWSCalls:
    """Operation names of the requests sent by the clients it listens to."""

    names: list[str] = field(default_factory=list)

    @classmethod
    def on(cls, *clients: Any) -> Self:
        """A recorder listening to every request of ``clients``."""
        recorder = cls()
        for client in clients:
            service = client.meta.service_model.service_id.hyphenize()
            client.meta.events.register(f"before-send.{service}.*", recorder.record)
        return recorder

    def record(self, event_name: str, **_: Any) -> None:
        self.names.append(event_name.rsplit(".", 1)[-1])

    @property
    def writes(self) -> list[str]:
        """The calls that change something (create, update, delete, put, register...)."""
        return [name for name in self.names if name.startswith(WRITE_PREFIXES)]
