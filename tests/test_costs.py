"""The cost estimate of a plan: the shipped price table, user tables, monthly figures, unknowns.

Pure (no AWS): the plan's estimate through moto and the Stubber is in tests/test_deployment.py.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from llm_twin_sdk import (
    ConfigurationError,
    EndpointSpec,
    InferenceComponentSpec,
    InvalidParameterError,
    ScaleToZero,
    TargetTracking,
)
from llm_twin_sdk.deploy.costs import HOURS_PER_MONTH, PriceTable, estimate_cost, resolve_prices
from llm_twin_sdk.scaling import Scheduled, ScheduledAction

ROLE = "arn:aws:iam::123456789012:role/twin-sagemaker"
G5_2XL = 1.515  # the shipped us-east-1 price of ml.g5.2xlarge


def spec(**overrides: Any) -> EndpointSpec:
    return EndpointSpec(**{"name": "twin", "role_arn": ROLE, **overrides})


def tracking(low: int, high: int) -> TargetTracking:
    return TargetTracking(metric="concurrency", target=4, min_capacity=low, max_capacity=high)


def test_the_shipped_table_is_dated_sourced_and_knows_the_documented_types() -> None:
    table = PriceTable.shipped()
    assert table.as_of == date(2024, 11, 1)
    assert table.source == "https://aws.amazon.com/sagemaker/pricing/"
    assert table.currency == "USD"
    assert table.price("us-east-1", "ml.g5.2xlarge") == G5_2XL
    for instance in ("ml.g5.xlarge", "ml.g5.12xlarge", "ml.g6.12xlarge", "ml.inf2.xlarge"):
        assert table.price("us-east-1", instance) is not None, instance
    assert table.price("us-west-2", "ml.g5.12xlarge") == 7.09
    assert table.price("us-east-1", "ml.p5.48xlarge") is None  # left out: unknown, not guessed


def test_monthly_cost_at_the_policy_minimum_and_maximum() -> None:
    cost = estimate_cost(spec(), tracking(1, 4), region="us-east-1")
    assert cost.known
    assert cost.hourly_price == G5_2XL
    assert (cost.min_instances, cost.max_instances) == (1, 4)
    assert cost.monthly_at_min == pytest.approx(1105.95)  # 1.515 x 730
    assert cost.monthly_at_max == pytest.approx(4423.80)  # x 4
    assert not cost.scales_to_zero
    text = str(cost)
    assert "$1.515 per instance-hour" in text
    assert "$1,105.95 at 1 instance(s), $4,423.80 at 4" in text
    assert "prices as of 2024-11-01" in text


def test_no_policy_costs_the_spec_fleet_and_schedules_widen_the_bounds() -> None:
    fixed = estimate_cost(spec(instance_count=3), region="us-east-1")
    assert (fixed.min_instances, fixed.max_instances) == (3, 3)
    assert fixed.monthly_at_min == fixed.monthly_at_max == pytest.approx(3 * 1105.95)
    night = ScheduledAction(
        name="night", schedule="cron(0 20 * * ? *)", min_capacity=1, max_capacity=1
    )
    day = ScheduledAction(name="day", schedule="cron(0 8 * * ? *)", min_capacity=2, max_capacity=6)
    widened = estimate_cost(
        spec(), [tracking(2, 3), Scheduled(actions=(night, day))], region="us-east-1"
    )
    assert (widened.min_instances, widened.max_instances) == (1, 6)


def test_scale_to_zero_saving_at_an_idle_fraction() -> None:
    components = InferenceComponentSpec(min_instances=0, max_instances=2)
    policy = ScaleToZero(target_tracking=tracking(0, 2))
    cost = estimate_cost(
        spec(components=components), policy, region="us-east-1", idle_fraction=0.75
    )
    assert cost.scales_to_zero
    assert (cost.min_instances, cost.max_instances) == (0, 2)
    assert cost.monthly_at_min == 0
    assert cost.monthly_at_max == pytest.approx(2211.90)
    # idle 75% of 730 h = 547.5 h without the one instance it would otherwise keep: x 1.515
    assert cost.scale_to_zero_saving == pytest.approx(829.46, abs=0.01)
    assert "scale-to-zero saves $829.46/month at 75% idle" in str(cost)

    # a fleet of 2 kept up: what scale-to-zero would save it, said as not in the policy
    kept = estimate_cost(spec(), tracking(2, 2), region="us-east-1", idle_fraction=0.5)
    assert not kept.scales_to_zero
    assert kept.scale_to_zero_saving == pytest.approx(1105.95)  # 365 h x 2 x 1.515
    text = str(kept)
    assert "would save $1,105.95/month at 50% idle (ScaleToZero on inference components)" in text


def test_unknown_instance_or_region_says_so_instead_of_guessing() -> None:
    region = estimate_cost(spec(), tracking(1, 2), region="ap-south-2")
    assert not region.known
    assert region.hourly_price is region.monthly_at_min is region.monthly_at_max is None
    assert region.scale_to_zero_saving is None
    assert region.reason is not None
    assert "no prices for region ap-south-2" in region.reason
    assert "unknown: no prices for region ap-south-2" in str(region)

    instance = estimate_cost(spec(instance_type="ml.p5.48xlarge"), region="us-east-1")
    assert instance.hourly_price is None
    assert instance.reason is not None
    assert "no price for ml.p5.48xlarge in us-east-1" in instance.reason
    assert (instance.min_instances, instance.max_instances) == (1, 1)  # bounds still known


def test_a_user_mapping_overrides_one_price_and_adds_a_region() -> None:
    prices = {"us-east-1": {"ml.g5.2xlarge": 1.2}, "eu-west-1": {"ml.g5.2xlarge": 1.7}}
    table = resolve_prices(prices)
    assert table.price("us-east-1", "ml.g5.2xlarge") == 1.2
    assert table.price("us-east-1", "ml.g5.xlarge") == 1.408  # the rest is kept
    cost = estimate_cost(spec(), region="eu-west-1", prices=prices)
    assert cost.monthly_at_min == pytest.approx(1.7 * HOURS_PER_MONTH)


def test_a_user_file_extends_the_shipped_table_with_its_own_date(tmp_path: Path) -> None:
    file = tmp_path / "prices.json"
    file.write_text(
        json.dumps(
            {
                "as_of": "2026-01-15",
                "source": "our AWS contract",
                "prices": {"eu-central-1": {"ml.g5.2xlarge": 1.9}},
            }
        )
    )
    cost = estimate_cost(spec(), region="eu-central-1", prices=file)
    assert cost.hourly_price == 1.9
    assert cost.source == "our AWS contract; https://aws.amazon.com/sagemaker/pricing/"
    assert cost.as_of == date(2024, 11, 1)  # the older of the two: the table is that old
    own = PriceTable.load(file)  # a table of its own: only what the file says
    assert own.price("us-east-1", "ml.g5.2xlarge") is None
    assert estimate_cost(spec(), region="eu-central-1", prices=own).as_of == date(2026, 1, 15)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        (
            {"as_of": "2025-01-01", "source": "x", "prices": {"us-east-1": {"ml.g5.xlarge": -1}}},
            r"us-east-1\.ml\.g5\.xlarge: price must be > 0",
        ),
        (
            {"as_of": "2025-01-01", "source": "x", "prices": {}, "discount": 0.1},
            r"discount: Extra inputs are not permitted",
        ),
        ({"as_of": "last week", "source": "x", "prices": {}}, r"as_of: Input should be a valid"),
        ({"source": "x", "prices": {}}, r"as_of: Field required"),
        (
            {"as_of": "2025-01-01", "source": "x", "prices": {"us-east-1": {"g5.xlarge": 1}}},
            r"us-east-1\.g5\.xlarge: not a SageMaker instance type",
        ),
        (
            {"as_of": "2025-01-01", "source": "x", "prices": {"Virginia": {"ml.g5.xlarge": 1}}},
            r"'Virginia' is not an AWS region name",
        ),
        (
            {"as_of": "2025-01-01", "source": "x", "prices": {"us-east-1": {"ml.g5.xlarge": "?"}}},
            r"prices\.us-east-1\.ml\.g5\.xlarge: Input should be a valid number",
        ),
    ],
)
def test_bad_user_tables_are_rejected_naming_the_entry(
    tmp_path: Path, table: dict[str, Any], match: str
) -> None:
    file = tmp_path / "mine.json"
    file.write_text(json.dumps(table))
    with pytest.raises(ConfigurationError, match=match) as caught:
        estimate_cost(spec(), region="us-east-1", prices=file)
    assert str(file) in str(caught.value)


def test_bad_price_arguments_are_typed_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"us-east-1\.ml\.g5\.xlarge: price must be > 0"):
        resolve_prices({"us-east-1": {"ml.g5.xlarge": 0}})
    with pytest.raises(ConfigurationError, match="cannot read it"):
        resolve_prices(tmp_path / "missing.json")
    (tmp_path / "broken.json").write_text("{ not json")
    with pytest.raises(ConfigurationError, match="not JSON"):
        resolve_prices(tmp_path / "broken.json")
    with pytest.raises(ConfigurationError, match="expected a PriceTable"):
        resolve_prices(42)  # type: ignore[arg-type]  # a wrong type on purpose
    for bad in (-0.1, 1.5, True):
        with pytest.raises(InvalidParameterError, match="idle_fraction"):
            estimate_cost(spec(), region="us-east-1", idle_fraction=bad)


def test_the_price_table_ships_in_the_wheel() -> None:
    """pyproject's wheel target packages src/llm_twin_sdk whole: prices.json goes with it."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / "pyproject.toml").read_text())
    packages = config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert "src/llm_twin_sdk" in packages
    assert (root / "src/llm_twin_sdk/deploy/prices.json").is_file()


def test_the_docs_example_prints_what_it_says(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/deployment.md, "What it costs": the Python block runs and prints exactly its
    ``# ->`` lines (tests/test_doc_examples.py runs it too, checking them in order)."""
    root = Path(__file__).resolve().parents[1]
    section = (root / "docs/deployment.md").read_text().split("## What it costs\n")[1]
    code = section.split("```python\n")[1].split("```")[0]
    exec(compile(code, "docs/deployment.md", "exec"), {})
    expected = [line[5:] for line in code.splitlines() if line.startswith("# -> ")]
    assert capsys.readouterr().out.splitlines() == expected


def test_the_docs_error_example_is_the_error_raised(tmp_path: Path) -> None:
    file = tmp_path / "my-prices.json"
    prices = {"eu-central-1": {"ml.g5.2xlarge": -1}}
    file.write_text(json.dumps({"as_of": "2026-01-15", "source": "ours", "prices": prices}))
    message = f"price file {file}: prices: eu-central-1.ml.g5.2xlarge: price must be > 0, got -1.0"
    with pytest.raises(ConfigurationError) as caught:
        resolve_prices(str(file))
    assert str(caught.value) == message
