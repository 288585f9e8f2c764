"""The AWS side of ``llm-twin``: ``plan``, ``up``, ``status``, ``scale``, ``down``, ``list``.

Each reads the settings (``LLM_TWIN_AWS_REGION``, ``LLM_TWIN_AWS_PROFILE``,
``LLM_TWIN_PRICE_FILE``...) and, where it takes one, a spec file (:mod:`.specfile`), then
checks that AWS has a region and credentials (:func:`aws_clients`) before its first call.
Writes happen only in ``up``, ``scale`` and ``down``, and never with ``--dry-run``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import ConfigurationError, InvalidParameterError, ResourceNotFoundError
from .output import ExitCode, fail, interrupted, print_json, stderr, stdout
from .render import (
    show_endpoints,
    show_plan,
    show_removal,
    show_scaling_plan,
    show_status,
)
from .specfile import SpecFile, load_spec, looks_like_spec

if TYPE_CHECKING:
    from rich.status import Status

    from ..aws import AWSClients
    from ..config import TwinSettings
    from ..deploy.status import EndpointStatus
    from ..deploy.waiting import WaitProgress
    from ..endpoint import EndpointRef
    from ..scaling.autoscaler import AutoScaler
    from ..scaling.plan import ScalingPlan
    from ..scaling.policies import ScalingPolicy

__all__ = ["aws_clients", "register", "settings"]

SpecArg = Annotated[
    Path, typer.Argument(help="Deployment spec file (YAML), e.g. examples/twin.yaml.")
]
TargetArg = Annotated[
    str,
    typer.Argument(help="Endpoint name, or a spec file (.yaml) naming it.", metavar="NAME|SPEC"),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON (for scripts) instead.")]
DryRunOpt = Annotated[bool, typer.Option("--dry-run", help="Read only: show what would change.")]


def settings() -> TwinSettings:
    """The settings from ``LLM_TWIN_*`` variables and ``.env`` (a bad one: exit 3)."""
    from ..config import TwinSettings

    return TwinSettings()


def aws_clients(s: TwinSettings) -> AWSClients:
    """AWS clients for the settings' region and profile, once a region and credentials are
    known to exist: a missing one raises ConfigurationError naming what sets it, before any
    AWS call and before any model loads."""
    from botocore.exceptions import BotoCoreError

    from ..aws import AWSClients, boto3_session

    profile = f" (profile {s.aws_profile!r})" if s.aws_profile else ""
    try:
        session = boto3_session(s.aws_region, s.aws_profile)
        region, credentials = session.region_name, session.get_credentials()
    except BotoCoreError as exc:  # an unknown profile, a broken config file
        raise ConfigurationError(
            f"AWS configuration{profile}: {exc}. Set LLM_TWIN_AWS_PROFILE (or AWS_PROFILE) to "
            "a profile in ~/.aws/config, or unset it to use the default credentials."
        ) from None
    if not region:
        raise ConfigurationError(
            f"no AWS region{profile}: set LLM_TWIN_AWS_REGION (or AWS_DEFAULT_REGION), "
            "or give the profile a region (aws configure)."
        )
    if credentials is None:
        raise ConfigurationError(
            f"no AWS credentials found{profile}: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or a profile with LLM_TWIN_AWS_PROFILE (or AWS_PROFILE; "
            "`aws configure` / `aws sso login` make one), or run where a role provides them."
        )
    return AWSClients(region=region, profile=s.aws_profile)


def _read_spec(path: Path | str, s: TwinSettings) -> SpecFile:
    return load_spec(path, hf_token=s.hf_token)


def _progress(status: Status | None) -> Callable[[WaitProgress], None]:
    """Where ``up`` reports each observation: the spinner's text on a terminal, one line
    each otherwise (logs, CI)."""

    def report(progress: WaitProgress) -> None:
        if status is not None:
            status.update(str(progress))
        else:
            stderr().print(f"  ... {progress}")

    return report


def plan(
    spec: SpecArg,
    idle_fraction: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="Share of the time the endpoint is idle, for the saving."
        ),
    ] = 0.5,
    prices: Annotated[
        Path | None,
        typer.Option(help="JSON price file extending the shipped table (LLM_TWIN_PRICE_FILE)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Show what `up` would change, and what the deployment costs a month (read calls only).

    The cost: price per instance-hour in the region, the monthly cost at the scaling
    policy's minimum and maximum, what scale-to-zero saves at `--idle-fraction`.
    """
    from ..deployment import TwinDeployment

    s = settings()
    spec_file = _read_spec(spec, s)
    deployment = TwinDeployment(spec_file.spec, spec_file.scaling, aws=aws_clients(s))
    result = deployment.plan(prices=prices or s.price_file, idle_fraction=idle_fraction)
    if json_:
        print_json({**result.model_dump(mode="json"), "is_noop": result.is_noop})
    else:
        show_plan(result)


def up(
    spec: SpecArg,
    dry_run: DryRunOpt = False,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for the endpoint to serve.")
    ] = 1800.0,
    json_: JsonOpt = False,
) -> None:
    """Deploy the spec, wait until the endpoint serves, then apply its autoscaling.

    Idempotent: a second `up` with the same spec makes no write call. `--dry-run` shows the
    plan (as `plan`) and makes read calls only. Prints the `LLM_TWIN_*` variables that make
    `llm-twin ask` answer from the endpoint.
    """
    from ..deployment import TwinDeployment
    from ..scaling.autoscaler import describe_policy

    s = settings()
    spec_file = _read_spec(spec, s)
    deployment = TwinDeployment(spec_file.spec, spec_file.scaling, aws=aws_clients(s))
    if dry_run:
        result = deployment.plan(prices=s.price_file)
        if json_:
            print_json({**result.model_dump(mode="json"), "is_noop": result.is_noop})
        else:
            show_plan(result)
        return
    name = spec_file.spec.name
    try:
        if stderr().is_terminal and not json_:
            with stderr().status(f"deploying {name}") as status:
                endpoint = deployment.deploy(progress=_progress(status), timeout_s=timeout)
        else:
            endpoint = deployment.deploy(progress=_progress(None), timeout_s=timeout)
    except KeyboardInterrupt:
        interrupted(
            f"stopped waiting; SageMaker goes on with what was started for {name!r}. "
            f"`llm-twin status {name}` shows where it stands, `llm-twin up {spec}` again "
            f"keeps waiting (and applies the autoscaling), `llm-twin down {name}` removes it."
        )
    environment = deployment.environment()
    if json_:
        print_json({"endpoint": endpoint.model_dump(mode="json"), "environment": environment})
        return
    stdout().print(f"[bold]deployed[/]: {endpoint.name} ({endpoint.status}, {endpoint.region})")
    stdout().print(f"  autoscaling: {describe_policy(spec_file.scaling)}")
    stdout().print("  to ask it: " + " ".join(f"{k}={v}" for k, v in environment.items()))


def status(target: TargetArg, json_: JsonOpt = False) -> None:
    """What SageMaker says about an endpoint, and its autoscaling (read calls only)."""
    from ..deploy.deployer import Deployer
    from ..scaling.autoscaler import AutoScaler

    s = settings()
    name = _read_spec(target, s).spec.name if looks_like_spec(target) else target
    aws = aws_clients(s)
    current = Deployer(aws=aws).status(name)
    scaler = AutoScaler(aws=aws)
    scaling = [scaler.describe(ref) for ref in _refs(current)]
    if json_:
        print_json(
            {
                "endpoint": current.model_dump(mode="json"),
                "autoscaling": [state.model_dump(mode="json") for state in scaling],
            }
        )
    else:
        show_status(current, scaling)


def _refs(current: EndpointStatus) -> list[EndpointRef]:
    """The scalable parts of an endpoint: each inference component, or its variant."""
    from ..endpoint import EndpointRef

    if not current.inference_components:
        return [current.ref()]
    return [
        EndpointRef(
            name=current.name,
            variant_name=current.variant_name or "AllTraffic",
            inference_component_name=component.name,
        )
        for component in current.inference_components
    ]


def _bounded(
    policies: tuple[ScalingPolicy, ...], low: int | None, high: int | None
) -> list[ScalingPolicy]:
    """The policies with the capacity policy's bounds replaced by ``--min`` / ``--max``."""
    from ..scaling.policies import ScaleToZero, TargetTracking

    if low is None and high is None:
        return list(policies)
    bounds = {
        key: value
        for key, value in (("min_capacity", low), ("max_capacity", high))
        if value is not None
    }
    changed: list[ScalingPolicy] = []
    for policy in policies:
        if isinstance(policy, TargetTracking):
            changed.append(policy.model_copy(update=bounds))
        elif isinstance(policy, ScaleToZero):
            tracking = policy.target_tracking.model_copy(update=bounds)
            changed.append(policy.model_copy(update={"target_tracking": tracking}))
        else:
            changed.append(policy)
    if not any(isinstance(policy, TargetTracking | ScaleToZero) for policy in policies):
        raise InvalidParameterError(
            "--min/--max bound a target-tracking or scale-to-zero policy, and the spec has "
            "none: add one under 'scaling:'"
        )
    return changed


def scale(
    spec: SpecArg,
    *,
    min_: Annotated[
        int | None, typer.Option("--min", min=0, help="New minimum instances (or copies).")
    ] = None,
    max_: Annotated[
        int | None, typer.Option("--max", min=1, help="New maximum instances (or copies).")
    ] = None,
    off: Annotated[
        bool, typer.Option("--off", help="Remove the endpoint's autoscaling instead.")
    ] = False,
    dry_run: DryRunOpt = False,
    json_: JsonOpt = False,
) -> None:
    """Make a deployed endpoint's autoscaling the spec's `scaling:` policies again.

    `--min` / `--max` change the bounds of its target-tracking (or scale-to-zero) policy for
    this run; `--off` removes the autoscaling. Keep the spec file the truth: edit it and
    run `scale` (or `up`) again. `--dry-run` shows the writes and makes none.
    """
    from ..deploy.deployer import Deployer
    from ..scaling.autoscaler import AutoScaler, check_policy

    s = settings()
    spec_file = _read_spec(spec, s)
    if off and (min_ is not None or max_ is not None):
        raise InvalidParameterError("--off removes the autoscaling: give it without --min/--max")
    policies = [] if off else _bounded(spec_file.policies, min_, max_)
    if not off and not policies:
        raise InvalidParameterError(
            f"{spec}: no 'scaling:' policies to apply; add one, or pass --off to remove "
            "the endpoint's autoscaling"
        )
    ref, policy = spec_file.spec.ref(), (policies[0] if len(policies) == 1 else policies) or None
    if policy is not None:
        check_policy(ref, policy)  # the new bounds fit the endpoint: before any AWS call
    aws = aws_clients(s)
    name = spec_file.spec.name
    try:
        Deployer(aws=aws).status(name)
    except ResourceNotFoundError:
        raise ResourceNotFoundError(
            f"endpoint {name!r} is not deployed in {aws.region}: run `llm-twin up {spec}` first",
            service="sagemaker",
            operation="describe_endpoint",
        ) from None
    scaler = AutoScaler(aws=aws)
    if dry_run:
        result = scaler.plan(ref, policy)
        if json_:
            print_json({**result.model_dump(mode="json"), "is_noop": result.is_noop})
        else:
            show_scaling_plan(result)
        return
    _apply(scaler, ref, policy, json_=json_)


def _apply(
    scaler: AutoScaler,
    ref: EndpointRef,
    policy: ScalingPolicy | list[ScalingPolicy] | None,
    *,
    json_: bool,
) -> None:
    if policy is None:
        scaler.remove(ref)
        state = scaler.describe(ref)
    else:
        state = scaler.apply(ref, policy)
    if json_:
        print_json(state.model_dump(mode="json"))
    else:
        stdout().print(str(state))


def down(
    target: TargetArg,
    *,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until the endpoint is gone.")] = True,
    timeout: Annotated[
        float, typer.Option(min=1.0, help="Seconds to wait for deletions.")
    ] = 1800.0,
    json_: JsonOpt = False,
) -> None:
    """Remove an endpoint and everything the SDK made for it: autoscaling, inference
    components, the endpoint, its SDK-tagged configs and models. Idempotent.

    Asks for confirmation; without a terminal to ask, `--yes` is required.
    """
    from ..deploy.deployer import Deployer
    from ..scaling.autoscaler import AutoScaler

    s = settings()
    name = _read_spec(target, s).spec.name if looks_like_spec(target) else target
    aws = aws_clients(s)
    deployer, scaler = Deployer(aws=aws), AutoScaler(aws=aws)
    try:
        refs = _refs(deployer.status(name))
    except ResourceNotFoundError:
        refs = [_ref(name)]
    planned = deployer.delete(name, dry_run=True)
    scaling = [p for p in (scaler.plan(ref, None) for ref in refs) if not p.is_noop]
    if dry_run or not (planned or scaling):
        if json_:
            print_json({"dry_run": dry_run, "would_remove": _listing(planned, scaling)})
        else:
            show_removal(planned, scaling, done=False)
        return
    if not yes:
        _confirm(name, aws.region)
    try:
        for ref in refs:
            scaler.remove(ref)
        removed = deployer.delete(name, wait=wait, timeout_s=timeout)
    except KeyboardInterrupt:
        interrupted(
            f"stopped; deletions already asked of SageMaker go on. `llm-twin down {name} "
            "--yes` again finishes removing (it is idempotent)."
        )
    if json_:
        print_json({"dry_run": False, "removed": _listing(removed, scaling)})
    else:
        show_removal(removed, scaling, done=True)


def _ref(name: str) -> EndpointRef:
    from ..endpoint import EndpointRef

    return EndpointRef(name=name)


def _listing(items: list[str], scaling: list[ScalingPlan]) -> list[str]:
    return [f"{c.item} {c.name}" for p in scaling for c in p.changes] + items


def _confirm(name: str, region: str | None) -> None:
    if not sys.stdin.isatty():
        fail(
            f"refusing to remove endpoint {name!r} without confirmation: there is no terminal "
            "to ask. Pass --yes (and --dry-run first to see what would be removed).",
            ExitCode.USAGE,
        )
    if not typer.confirm(
        f"Remove endpoint {name!r} in {region} and everything the SDK made for it?"
    ):
        fail("cancelled: nothing was removed", ExitCode.ERROR)


def list_(json_: JsonOpt = False) -> None:
    """The endpoints this SDK manages in the region (tagged managed-by: llm-twin-sdk)."""
    from ..deploy.deployer import Deployer

    aws = aws_clients(settings())
    endpoints = Deployer(aws=aws).list()
    if json_:
        print_json([endpoint.model_dump(mode="json") for endpoint in endpoints])
    else:
        show_endpoints(endpoints, str(aws.region))


_EXAMPLES = {
    "plan": [
        "llm-twin plan examples/twin.yaml",
        "llm-twin plan examples/twin-scale-to-zero.yaml --idle-fraction 0.7",
        "LLM_TWIN_AWS_REGION=eu-west-1 llm-twin plan twin.yaml --prices my-prices.json --json",
    ],
    "up": [
        "llm-twin up examples/twin.yaml --dry-run",
        "LLM_TWIN_HF_TOKEN=hf_... llm-twin up examples/twin.yaml --timeout 3600",
    ],
    "status": ["llm-twin status llm-twin", "llm-twin status examples/twin.yaml --json"],
    "scale": [
        "llm-twin scale examples/twin.yaml",
        "llm-twin scale examples/twin.yaml --min 2 --max 4 --dry-run",
        "llm-twin scale examples/twin.yaml --off",
    ],
    "down": [
        "llm-twin down llm-twin --dry-run",
        "llm-twin down examples/twin.yaml --yes",
    ],
    "list": ["llm-twin list", "LLM_TWIN_AWS_REGION=us-west-2 llm-twin list --json"],
}


def epilog(lines: list[str]) -> str:
    """A command's examples, for its ``--help``."""
    return "**Examples**\n\n```\n" + "\n".join(lines) + "\n```"


def register(app: typer.Typer) -> None:
    """Add the AWS commands to ``app``."""
    panel = "AWS side (spec file, SageMaker)"
    commands: dict[str, Callable[..., None]] = {
        "plan": plan,
        "up": up,
        "status": status,
        "scale": scale,
        "down": down,
        "list": list_,
    }
    for name, command in commands.items():
        app.command(name, epilog=epilog(_EXAMPLES[name]), rich_help_panel=panel)(command)
