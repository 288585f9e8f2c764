"""The deployment spec file of the command line: YAML with an ``endpoint:`` (the fields of
:class:`~llm_twin_sdk.EndpointSpec`) and an optional ``scaling:`` list of policies, each with
a ``kind:`` (``target-tracking``, ``scale-to-zero``, ``scheduled``) and that policy's fields::

    endpoint:
      name: llm-twin
      role_arn: arn:aws:iam::123456789012:role/llm-twin-sagemaker
      instance_type: ml.g5.2xlarge
    scaling:
      - kind: target-tracking
        metric: invocations
        target: 10
        min_capacity: 1
        max_capacity: 2

Every problem raises :class:`~llm_twin_sdk.errors.SpecFileError` naming the file, the line
and the field (``twin.yaml:4: endpoint.instance_type: must look like ml.<family>.<size>``),
before any AWS call. Example: ``spec_file = load_spec("examples/twin.yaml")``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidInputError, SpecFileError

if TYPE_CHECKING:
    import yaml

    from ..deploy.spec import EndpointSpec
    from ..scaling.policies import ScalingPolicy

__all__ = ["POLICY_KINDS", "SpecFile", "load_spec", "looks_like_spec"]

POLICY_KINDS = ("target-tracking", "scale-to-zero", "scheduled")
"""The ``kind:`` of each scaling policy in a spec file."""

_SECTIONS = ("endpoint", "scaling")


@dataclass(frozen=True)
class SpecFile:
    """A spec file, read and validated: the endpoint and its scaling policies."""

    path: Path
    spec: EndpointSpec
    policies: tuple[ScalingPolicy, ...] = ()

    @property
    def scaling(self) -> ScalingPolicy | list[ScalingPolicy] | None:
        """The policies as ``TwinDeployment`` and ``AutoScaler`` take them (``None``: none)."""
        if not self.policies:
            return None
        return self.policies[0] if len(self.policies) == 1 else list(self.policies)


def looks_like_spec(target: str) -> bool:
    """Whether a ``NAME|SPEC`` argument names a spec file rather than an endpoint."""
    return target.endswith((".yaml", ".yml")) or Path(target).is_file()


def _field(path: Sequence[str]) -> str:
    """``("scaling", "0", "target")`` -> ``scaling[0].target``."""
    text = ""
    for part in path:
        text += f"[{part}]" if part.isdigit() else f".{part}" if text else part
    return text


def _line(node: yaml.Node, path: Sequence[str]) -> int:
    """The 1-based line of the deepest part of ``path`` the YAML holds (a missing field: its
    parent's line)."""
    import yaml

    line = node.start_mark.line + 1
    for part in path:
        if isinstance(node, yaml.MappingNode):
            found = next(((k, v) for k, v in node.value if str(k.value) == part), None)
            if found is None:
                break
            line, node = found[0].start_mark.line + 1, found[1]
        elif isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            break
    return line


class _Reader:
    """One spec file being read: its YAML node tree, for the line of each field."""

    def __init__(self, path: Path, root: yaml.Node) -> None:
        self.path = path
        self.root = root

    def error(self, path: Sequence[str], text: str) -> SpecFileError:
        line = _line(self.root, path)
        field = _field(path) or None
        where = f"{field}: " if field else ""
        return SpecFileError(
            f"{self.path}:{line}: {where}{text}", path=str(self.path), line=line, field=field
        )

    def invalid(self, path: Sequence[str], exc: InvalidInputError) -> SpecFileError:
        """The SDK's validation error of the model at ``path``, located: its first problem
        names the line and field, every problem is listed."""
        from pydantic import ValidationError

        from ..types import validation_problems

        cause = exc.__cause__
        if not isinstance(cause, ValidationError):
            return self.error(path, str(exc))
        problems = [((*path, *where), text) for where, text in validation_problems(cause)]
        first = self.error(*problems[0])
        for where, text in problems[1:]:
            first.add_note(str(self.error(where, text)))
        return first

    def mapping(self, value: Any, path: Sequence[str], what: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.error(path, f"expected {what} (a mapping of fields), got {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return "nothing" if value is None else type(value).__name__


def load_spec(path: str | Path, *, hf_token: Any = None) -> SpecFile:
    """Read and validate a spec file. ``hf_token`` (a ``SecretStr``, from the settings'
    ``LLM_TWIN_HF_TOKEN``) is used when the endpoint sets none: keep tokens out of the file.

    Raises:
        SpecFileError: the file cannot be read, is not YAML, or a field is unknown or
            invalid (file, line and field named), or the scaling does not fit the endpoint.
    """
    import yaml

    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SpecFileError(
            f"{file}: cannot read the spec file ({reason})", path=str(file)
        ) from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        raise SpecFileError(
            f"{file}:{line or 1}: not valid YAML: {problem}", path=str(file), line=line
        ) from None
    if root is None:
        raise SpecFileError(f"{file}:1: the spec file is empty", path=str(file), line=1)
    reader = _Reader(file, root)
    top = reader.mapping(data, (), "'endpoint:' and 'scaling:'")
    for key in top:
        if key not in _SECTIONS:
            raise reader.error((str(key),), f"unknown section; expected {' and '.join(_SECTIONS)}")
    if "endpoint" not in top:
        raise reader.error((), "no 'endpoint:' section (the EndpointSpec fields)")
    spec = _endpoint(reader, reader.mapping(top["endpoint"], ("endpoint",), "endpoint"), hf_token)
    policies = _policies(reader, top.get("scaling"))
    if policies:
        from ..scaling.autoscaler import check_policy

        try:
            check_policy(spec.ref(), policies[0] if len(policies) == 1 else policies)
        except InvalidInputError as exc:
            raise reader.error(("scaling",), str(exc)) from None
    return SpecFile(path=file, spec=spec, policies=policies)


def _endpoint(reader: _Reader, fields: dict[str, Any], hf_token: Any) -> EndpointSpec:
    from ..deploy.spec import EndpointSpec

    if hf_token is not None and fields.get("hf_token") is None:
        fields = {**fields, "hf_token": hf_token}
    try:
        return EndpointSpec(**{str(k): v for k, v in fields.items()})
    except InvalidInputError as exc:
        raise reader.invalid(("endpoint",), exc) from None


def _policies(reader: _Reader, value: Any) -> tuple[ScalingPolicy, ...]:
    from ..scaling.policies import ScaleToZero, Scheduled, TargetTracking

    types: dict[str, Any] = {
        "target-tracking": TargetTracking,
        "scale-to-zero": ScaleToZero,
        "scheduled": Scheduled,
    }
    if value is None:
        return ()
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list):
        raise reader.error(("scaling",), f"expected a list of policies, got {_kind(value)}")
    policies: list[ScalingPolicy] = []
    for index, item in enumerate(items):
        where = ("scaling", str(index)) if isinstance(value, list) else ("scaling",)
        fields = dict(reader.mapping(item, where, "a policy"))
        kind = fields.pop("kind", None)
        if kind not in types:
            got = "none" if kind is None else repr(kind)
            raise reader.error(
                (*where, "kind"), f"expected one of {', '.join(POLICY_KINDS)}; got {got}"
            )
        try:
            policies.append(types[kind](**{str(k): v for k, v in fields.items()}))
        except InvalidInputError as exc:
            raise reader.invalid(where, exc) from None
    return tuple(policies)
