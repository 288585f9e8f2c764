"""What a deployment costs: SageMaker on-demand prices and a monthly estimate of a plan.

The SDK ships a dated price table (``prices.json`` next to this module: SageMaker real-time
inference, on-demand, USD per instance-hour, from https://aws.amazon.com/sagemaker/pricing/).
Prices change: extend or override it with your own file or mapping. An instance type or region
the table does not know gives an estimate that says so (``hourly_price is None`` and a
``reason``), never a guess. Example::

    prices = PriceTable.shipped().extended({"eu-west-1": {"ml.g5.2xlarge": 1.69}})
    cost = estimate_cost(spec, TargetTracking(...), region="eu-west-1", prices=prices)
    print(cost)    # $/hour, monthly at the policy's minimum and maximum, scale-to-zero saving
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any, Literal, TypeAlias

from pydantic import Field, ValidationError, field_validator

from ..display import Shown, brief, html_block, money, paragraph
from ..display import table as html_table
from ..errors import ConfigurationError, InvalidInputError, InvalidParameterError
from ..scaling.policies import (
    BacklogScaling,
    ScaleToZero,
    ScalingPolicy,
    Scheduled,
    TargetTracking,
)
from ..types import _Model
from .spec import EndpointSpec

__all__ = [
    "HOURS_PER_MONTH",
    "CostEstimate",
    "PriceTable",
    "Prices",
    "estimate_cost",
    "resolve_prices",
]

HOURS_PER_MONTH = 730.0
"""Hours in the average month (8,760 / 12), as AWS's own calculator counts."""

_REGION = r"^[a-z]{2}(-gov)?-[a-z]+-\d+$"
_INSTANCE = r"^ml\.[a-z0-9-]+\.[a-z0-9]+$"

PriceMap: TypeAlias = Mapping[str, Mapping[str, float]]
"""``{region: {instance type: USD per instance-hour}}``."""


class PriceTable(_Model):
    """SageMaker real-time on-demand prices, USD per instance-hour, by region and instance type.

    ``PriceTable.shipped()`` is the table in the SDK (see ``as_of`` and ``source``);
    ``PriceTable.load(path)`` reads a JSON file of the same shape (a full table of your own);
    ``table.extended(mapping_or_table)`` overrides or adds prices. A bad entry raises
    :class:`~llm_twin_sdk.errors.ConfigurationError` naming it (``prices.us-east-1.ml.g5.xlarge``).

    Example: ``PriceTable.shipped().price("us-east-1", "ml.g5.2xlarge")`` -> ``1.515``.
    """

    as_of: date = Field(description="The day the prices were read.")
    source: str = Field(min_length=1, description="Where they were read (a URL or a note).")
    currency: Literal["USD"] = "USD"
    note: str = ""
    prices: dict[str, dict[str, float]] = Field(default_factory=dict)

    @field_validator("prices")
    @classmethod
    def _check_prices(cls, value: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        for region, table in value.items():
            if not re.match(_REGION, region):
                raise ValueError(f"{region!r} is not an AWS region name (e.g. 'us-east-1')")
            for instance, price in table.items():
                if not re.match(_INSTANCE, instance):
                    raise ValueError(
                        f"{region}.{instance}: not a SageMaker instance type (e.g. 'ml.g5.xlarge')"
                    )
                if not price > 0:
                    raise ValueError(f"{region}.{instance}: price must be > 0, got {price}")
        return value

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, origin: str = "price table") -> PriceTable:
        """A table from a mapping of the file's shape; ``origin`` names it in errors."""
        if not isinstance(data, Mapping):
            raise ConfigurationError(f"{origin}: expected a JSON object, got {type(data).__name__}")
        try:
            return cls.model_validate(dict(data))
        except InvalidInputError as exc:  # _Model's error; its cause names the entry
            cause = exc.__cause__
            if not isinstance(cause, ValidationError):
                raise ConfigurationError(f"{origin}: {exc}") from exc
            first = cause.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "table"
            reason = first["msg"].removeprefix("Value error, ")
            raise ConfigurationError(f"{origin}: {where}: {reason}") from exc

    @classmethod
    def load(cls, path: str | Path) -> PriceTable:
        """The table in a JSON file (``as_of``, ``source``, ``prices``: see ``shipped()``)."""
        file = Path(path)
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"price file {file}: cannot read it ({exc.strerror})") from exc
        except json.JSONDecodeError as exc:
            raise ConfigurationError(
                f"price file {file}: not JSON (line {exc.lineno}: {exc.msg})"
            ) from exc
        return cls.from_mapping(data, origin=f"price file {file}")

    @classmethod
    def shipped(cls) -> PriceTable:
        """The table shipped with the SDK (``llm_twin_sdk/deploy/prices.json``)."""
        text = resources.files(__package__).joinpath("prices.json").read_text(encoding="utf-8")
        return cls.from_mapping(json.loads(text), origin="shipped price table")

    def extended(self, other: PriceTable | PriceMap) -> PriceTable:
        """This table with ``other``'s prices added or replacing these; a bare mapping
        ``{region: {instance: price}}`` keeps this table's date, a table brings its own."""
        table = (
            other
            if isinstance(other, PriceTable)
            else PriceTable.from_mapping(
                {"as_of": self.as_of, "source": self.source, "prices": other},
                origin="price overrides",
            )
        )
        merged = {region: dict(rows) for region, rows in self.prices.items()}
        for region, rows in table.prices.items():
            merged.setdefault(region, {}).update(rows)
        source = self.source if table.source == self.source else f"{table.source}; {self.source}"
        return self.model_copy(
            update={"prices": merged, "as_of": min(self.as_of, table.as_of), "source": source}
        )

    def price(self, region: str, instance_type: str) -> float | None:
        """USD per instance-hour, or ``None`` when the table does not know it."""
        return self.prices.get(region, {}).get(instance_type)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # Date, source and how many prices: the whole table is in ``prices``.
        count = sum(len(rows) for rows in self.prices.values())
        yield "as_of", Shown(self.as_of.isoformat())
        yield "source", brief(self.source, 48)
        yield "prices", Shown(f"{count} in {len(self.prices)} region(s)")


Prices: TypeAlias = PriceTable | PriceMap | str | Path | None
"""A table, overrides of the shipped one, a JSON file extending it, or ``None`` (shipped)."""


def resolve_prices(prices: Prices) -> PriceTable:
    """The table ``prices`` means: ``None`` -> shipped; a path -> the shipped table extended by
    that file; a mapping -> the shipped table with those prices; a table -> itself."""
    if isinstance(prices, PriceTable):
        return prices
    if prices is None:
        return PriceTable.shipped()
    if isinstance(prices, str | Path):
        return PriceTable.shipped().extended(PriceTable.load(prices))
    if isinstance(prices, Mapping):
        return PriceTable.shipped().extended(prices)
    raise ConfigurationError(
        f"prices: expected a PriceTable, a mapping or a file path, got {type(prices).__name__}"
    )


class CostEstimate(_Model):
    """What an endpoint costs a month at its scaling bounds (on-demand list price, USD).

    ``hourly_price`` is ``None`` when the price table does not know the instance type in the
    region; then every amount is ``None`` and ``reason`` says why. Monthly figures count
    730 hours. ``scale_to_zero_saving`` is what scaling to zero saves a month when the endpoint
    is idle ``idle_fraction`` of the time, against keeping ``max(min_instances, 1)`` up;
    ``scales_to_zero`` says whether the policy does it (the saving is then already yours).
    """

    instance_type: str
    region: str
    hourly_price: float | None
    min_instances: int = Field(ge=0)
    max_instances: int = Field(ge=0)
    monthly_at_min: float | None
    monthly_at_max: float | None
    scales_to_zero: bool
    idle_fraction: float = Field(ge=0, le=1)
    scale_to_zero_saving: float | None
    currency: Literal["USD"] = "USD"
    as_of: date
    source: str
    reason: str | None = None

    @property
    def known(self) -> bool:
        """True when the table has a price for this instance type in this region."""
        return self.hourly_price is not None

    @property
    def per_month(self) -> str:
        """The monthly range in words: ``"$1,105.95..$4,423.80/month"`` (or ``"unknown"``)."""
        if self.hourly_price is None:
            return "unknown"
        return f"{money(self.monthly_at_min)}..{money(self.monthly_at_max)}/month"

    def _saving(self) -> str:
        """What scale-to-zero saves (or would save), in words."""
        saving = f"{money(self.scale_to_zero_saving)}/month at {self.idle_fraction:.0%} idle"
        if self.scales_to_zero:
            return f"scale-to-zero saves {saving}"
        return f"scale-to-zero would save {saving} (ScaleToZero on inference components)"

    def __str__(self) -> str:
        head = f"cost ({self.instance_type}, {self.region}, prices as of {self.as_of}):"
        if self.hourly_price is None:
            return f"{head} unknown: {self.reason}"
        return "\n".join(
            [
                f"{head} {money(self.hourly_price, 3)} per instance-hour",
                f"    monthly: {money(self.monthly_at_min)} at {self.min_instances} instance(s), "
                f"{money(self.monthly_at_max)} at {self.max_instances}",
                f"    {self._saving()}",
                f"    source: {self.source}",
            ]
        )

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # The figures; the date, source and idle fraction are in str() and the HTML.
        yield "instance_type", self.instance_type
        yield "region", self.region
        yield "hourly_price", self.hourly_price
        if self.hourly_price is None:
            yield "reason", brief(self.reason or "")
            return
        yield "instances", Shown(f"{self.min_instances}..{self.max_instances}")
        yield "monthly_at_min", self.monthly_at_min
        yield "monthly_at_max", self.monthly_at_max
        yield "scale_to_zero_saving", self.scale_to_zero_saving

    def _repr_html_(self) -> str:
        """The estimate in Jupyter: price per hour, monthly at the scaling bounds, the
        scale-to-zero saving, and where the prices come from (every value escaped)."""
        fields: dict[str, object] = {"instance": self.instance_type, "region": self.region}
        fields |= {"prices as of": self.as_of, "source": self.source}
        if self.hourly_price is None:
            return html_block("Cost estimate", paragraph(f"unknown: {self.reason}"), fields=fields)
        rows = [
            ["per instance-hour", 1, money(self.hourly_price, 3)],
            ["a month at the minimum", self.min_instances, money(self.monthly_at_min)],
            ["a month at the maximum", self.max_instances, money(self.monthly_at_max)],
        ]
        return html_block(
            "Cost estimate",
            html_table(["", "instances", "USD"], rows),
            paragraph(self._saving()),
            fields=fields,
        )


def _bounds(
    spec: EndpointSpec, scaling: ScalingPolicy | Sequence[ScalingPolicy] | None
) -> tuple[int, int, bool]:
    policies: Sequence[ScalingPolicy] = (
        () if scaling is None else [scaling] if not isinstance(scaling, Sequence) else scaling
    )
    to_zero = any(
        isinstance(p, ScaleToZero) or (isinstance(p, BacklogScaling) and p.min_capacity == 0)
        for p in policies
    )
    parts = spec.components
    if parts is not None:  # instances follow managed instance scaling, copies the policy
        return parts.min_instances, parts.max_instances, to_zero and parts.min_instances == 0
    bounds: list[tuple[int, int]] = []
    for policy in policies:
        tracking = policy.target_tracking if isinstance(policy, ScaleToZero) else policy
        if isinstance(tracking, TargetTracking | Scheduled | BacklogScaling):
            bounds.append((tracking.min_capacity, tracking.max_capacity))
    if not bounds:
        return spec.instance_count, spec.instance_count, False
    low = min(b[0] for b in bounds)
    return low, max(b[1] for b in bounds), to_zero and low == 0


def estimate_cost(
    spec: EndpointSpec,
    scaling: ScalingPolicy | Sequence[ScalingPolicy] | None = None,
    *,
    region: str,
    prices: Prices = None,
    idle_fraction: float = 0.5,
) -> CostEstimate:
    """The monthly cost of ``spec`` under ``scaling`` in ``region`` (no AWS call).

    Instances: an inference-component endpoint's ``components.min/max_instances``; a
    model-based one's policy bounds (``instance_count`` without a policy). Raises
    :class:`~llm_twin_sdk.errors.InvalidParameterError` for an ``idle_fraction`` outside
    0..1 and ConfigurationError for a bad price table; an unknown price is no error.

    Example: ``estimate_cost(spec, region="us-east-1").monthly_at_max`` -> ``1105.95``
    for one ml.g5.2xlarge.
    """
    if isinstance(idle_fraction, bool) or not isinstance(idle_fraction, int | float):
        raise InvalidParameterError(f"idle_fraction: expected a number, got {idle_fraction!r}")
    if not 0 <= idle_fraction <= 1:
        raise InvalidParameterError(f"idle_fraction must be within 0..1, got {idle_fraction}")
    table = resolve_prices(prices)
    low, high, to_zero = _bounds(spec, scaling)
    hourly = table.price(region, spec.instance_type)
    reason = None
    if hourly is None:
        known = region in table.prices
        reason = (
            f"no price for {spec.instance_type} in {region} in the table"
            if known
            else f"no prices for region {region} in the table"
        ) + " (add it with prices=...: docs/deployment.md, 'What it costs')"

    def monthly(instances: float) -> float | None:
        return None if hourly is None else round(hourly * HOURS_PER_MONTH * instances, 2)

    return CostEstimate(
        instance_type=spec.instance_type,
        region=region,
        hourly_price=hourly,
        min_instances=low,
        max_instances=high,
        monthly_at_min=monthly(low),
        monthly_at_max=monthly(high),
        scales_to_zero=to_zero,
        idle_fraction=float(idle_fraction),
        scale_to_zero_saving=monthly(idle_fraction * max(low, 1)),
        as_of=table.as_of,
        source=table.source,
        reason=reason,
    )
