"""The identity of a SageMaker endpoint, shared by deployment, scaling and clients:
:class:`EndpointRef` (enough to call or scale it) and :data:`MANAGED_BY_TAG`, on every AWS
resource the SDK creates. Example: ``AutoScaler().describe(EndpointRef(name="twin"))``.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from typing import Any, Literal

from .types import _Model

__all__ = ["MANAGED_BY_TAG", "RESOURCE_NAME", "EndpointRef", "has_sdk_tag", "tag_problem"]

RESOURCE_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9])*$")
"""SageMaker's rule for endpoint, config, model and variant names (letters, digits, hyphens)."""

MANAGED_BY_TAG = ("managed-by", "llm-twin-sdk")
"""Tag key and value on every resource the SDK creates; ``Deployer.list`` finds endpoints by it."""


_TAG_TEXT = r"[\w\s.:/=+\-@]"  # AWS's tag alphabet: letters, digits, spaces and _.:/=+-@


def tag_problem(
    tags: Mapping[Any, Any], *, limit: int, reserved: Collection[str] = (MANAGED_BY_TAG[0],)
) -> str | None:
    """What breaks AWS's tag rules (or the SDK's reserved keys) in user ``tags``; None if fine."""
    alphabet = "letters, digits, spaces and _.:/=+-@"
    for key, value in tags.items():
        if not isinstance(key, str) or not re.fullmatch(f"{_TAG_TEXT}{{1,128}}", key):
            return f"tag key {key!r}: allowed 1-128 characters among {alphabet}"
        if key.lower().startswith("aws:"):
            return f"tag key {key!r}: not starting 'aws:'"
        if key in reserved:
            return f"tag key {key!r} is reserved for llm-twin-sdk"
        if not isinstance(value, str) or not re.fullmatch(f"{_TAG_TEXT}{{0,256}}", value):
            return f"tag {key!r}: values allow 0-256 characters among {alphabet}"
    return f"at most {limit} tags" if len(tags) > limit else None


def has_sdk_tag(tags: Iterable[Mapping[str, Any]]) -> bool:
    """True when AWS ``[{"Key": ..., "Value": ...}]`` tags hold :data:`MANAGED_BY_TAG`."""
    key, value = MANAGED_BY_TAG
    return any(t.get("Key") == key and t.get("Value") == value for t in tags)


class EndpointRef(_Model):
    """Identity of a deployed endpoint: enough to call or scale it.

    ``inference_component_name`` is set for inference-component endpoints; ``asynchronous``
    for asynchronous-inference endpoints (scaled on their queue backlog).
    """

    name: str
    variant_name: str = "AllTraffic"
    inference_component_name: str | None = None
    asynchronous: bool = False

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # ``asynchronous`` only when set: a real-time endpoint's repr reads as before.
        for name, value in super().__repr_args__():
            if not (name == "asynchronous" and value is False):
                yield name, value

    @property
    def kind(self) -> Literal["model", "inference-component"]:
        return "model" if self.inference_component_name is None else "inference-component"
