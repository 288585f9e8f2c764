"""Bad input to ``llm-twin``: unknown commands and options, spec files with errors (line and
field named), missing AWS region or credentials (said before any call or model load), bad
settings; each a clear message, a meaningful exit code, never a traceback. Also: ``--help``
of every command shows examples and loads no heavy library; the console script is declared."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

from cli_support import EXAMPLE_SPEC, ROOT, ZERO_SPEC, process_env, run
from llm_twin_sdk.cli.data_side import Footing
from llm_twin_sdk.cli.output import ExitCode
from llm_twin_sdk.cli.specfile import load_spec
from llm_twin_sdk.errors import SpecFileError

COMMANDS = ("plan", "up", "status", "scale", "down", "list", "ingest", "ask", "eval")


def no_traceback(text: str) -> None:
    assert "Traceback" not in text
    assert 'File "' not in text


def test_unknown_command_is_a_usage_error() -> None:
    result = run("plna", "twin.yaml")
    assert result.exit_code == ExitCode.USAGE
    assert int(ExitCode.USAGE) == 2
    assert "No such command 'plna'" in result.output
    assert "Did you mean 'plan'" in result.output
    no_traceback(result.output)


def test_unknown_option_is_a_usage_error() -> None:
    result = run("list", "--regoin", "us-east-1")
    assert result.exit_code == 2
    assert "No such option: --regoin" in result.output


def test_option_out_of_range_is_a_usage_error() -> None:
    result = run("plan", str(EXAMPLE_SPEC), "--idle-fraction", "1.5")
    assert result.exit_code == 2
    assert "--idle-fraction" in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_examples(command: str) -> None:
    result = run(command, "--help")
    assert result.exit_code == 0, result.output
    assert "Examples" in result.output
    assert f"llm-twin {command}" in result.output


def test_top_level_help_lists_commands_and_exit_codes() -> None:
    result = run("--help")
    assert result.exit_code == 0
    for command in COMMANDS:
        assert command in result.output
    assert "130 interrupted" in result.output


def test_version() -> None:
    from llm_twin_sdk import __version__

    result = run("--version")
    assert result.exit_code == 0
    assert result.output.strip() == f"llm-twin {__version__}"


def test_help_loads_no_heavy_library() -> None:
    """`llm-twin --help` imports neither a model library nor boto3 (like `import llm_twin_sdk`)."""
    code = textwrap.dedent("""
        import sys
        from llm_twin_sdk.cli import main
        try:
            main(["--help"])
        except SystemExit as stop:
            assert stop.code == 0, stop.code
        print(" ".join(sorted(sys.modules)), file=sys.stderr)
    """)
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=process_env(), check=True
    )
    loaded = done.stderr.split()
    heavy = (
        *("torch", "sentence_transformers", "llama_cpp", "boto3", "botocore", "qdrant_client"),
        *("httpx", "numpy", "transformers", "pydantic_settings"),
    )
    assert [m for m in loaded if m.split(".")[0] in heavy] == []
    assert "Usage: llm-twin" in done.stdout


def test_pyproject_declares_the_console_script() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["scripts"] == {"llm-twin": "llm_twin_sdk.cli:main"}
    dependencies = " ".join(project["dependencies"])
    assert "typer" in dependencies
    assert "rich" in dependencies
    assert "pyyaml" in dependencies


def test_python_dash_m_runs_the_command_line() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "llm_twin_sdk", "--version"],
        capture_output=True,
        text=True,
        env=process_env(),
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("llm-twin ")


# -- spec files -------------------------------------------------------------------------------


def test_the_example_specs_load() -> None:
    example = load_spec(EXAMPLE_SPEC)
    assert example.spec.name == "llm-twin"
    assert example.spec.instance_type == "ml.g5.2xlarge"
    assert [type(p).__name__ for p in example.policies] == ["TargetTracking", "Scheduled"]
    zero = load_spec(ZERO_SPEC)
    assert zero.spec.kind == "inference-component"
    assert type(zero.scaling).__name__ == "ScaleToZero"


ROLE = "arn:aws:iam::123456789012:role/twin"

BAD_SPECS = [
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\n  instance_type: g5.2xlarge\n",
        4,
        "endpoint.instance_type",
        "must look like ml.<family>.<size>",
        id="bad-field",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  instance_type: ml.g5.xlarge\n",
        1,
        "endpoint.role_arn",
        "Field required",
        id="missing-field",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\n  instance_typ: ml.g5.xlarge\n",
        4,
        "endpoint.instance_typ",
        "Extra inputs are not permitted",
        id="unknown-field",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\nscalin: []\n",
        4,
        "scalin",
        "unknown section",
        id="unknown-section",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\nscaling:\n  - metric: invocations\n",
        5,
        "scaling[0].kind",
        "expected one of target-tracking, scale-to-zero, scheduled; got none",
        id="policy-without-kind",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\nscaling:\n"
        "  - kind: target-tracking\n    metric: invocations\n    target: 10\n"
        "    min_capacity: 3\n    max_capacity: 2\n",
        9,
        "scaling[0].max_capacity",
        "must be >= min_capacity (3)",
        id="policy-field",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\nscaling:\n"
        "  - kind: scheduled\n    actions:\n      - name: night\n        schedule: cron(0 20 *)\n"
        "        min_capacity: 1\n        max_capacity: 1\n",
        8,
        "scaling[0].actions[0].schedule",
        "cron() takes 6 fields",
        id="nested-policy-field",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: {role}\nscaling:\n  - kind: scale-to-zero\n"
        "    target_tracking: {{metric: concurrency, target: 4, min_capacity: 0, "
        "max_capacity: 1}}\n",
        4,
        "scaling",
        "inference component",
        id="policy-does-not-fit",
    ),
    pytest.param(
        "endpoint:\n  name: twin\n  role_arn: [unclosed\n",
        4,
        None,
        "not valid YAML",
        id="not-yaml",
    ),
    pytest.param("", 1, None, "the spec file is empty", id="empty"),
    pytest.param("- just\n- a list\n", 1, None, "expected 'endpoint:'", id="not-a-mapping"),
]


@pytest.mark.parametrize(("text", "line", "field", "message"), BAD_SPECS)
def test_spec_file_errors_name_line_and_field(
    tmp_path: Path, text: str, line: int, field: str | None, message: str
) -> None:
    spec = tmp_path / "twin.yaml"
    spec.write_text(text.format(role=ROLE), encoding="utf-8")
    with pytest.raises(SpecFileError) as caught:
        load_spec(spec)
    error = caught.value
    assert (error.line, error.field) == (line, field)
    assert str(error).startswith(f"{spec}:{line}: ")
    assert message in str(error)
    # The command line: the same message, exit 2, no traceback, before any AWS call (there
    # are no credentials here, and the spec is refused first).
    result = run("plan", str(spec))
    assert result.exit_code == ExitCode.USAGE
    assert f"{spec}:{line}:" in result.output
    no_traceback(result.output)


def test_spec_file_lists_every_problem_and_hides_secrets(tmp_path: Path) -> None:
    spec = tmp_path / "twin.yaml"
    spec.write_text(
        "endpoint:\n  name: twin\n  role_arn: not-an-arn\n  hf_token: 73915842604\n"
        "  instance_count: 0\n",
        encoding="utf-8",
    )
    result = run("plan", str(spec))
    assert result.exit_code == 2
    assert f"{spec}:3: endpoint.role_arn: must be an IAM role ARN" in result.output
    assert f"{spec}:5: endpoint.instance_count" in result.output
    assert f"{spec}:4: endpoint.hf_token" in result.output
    assert "73915842604" not in result.output  # the token's value (a number: no string)


def test_missing_spec_file(tmp_path: Path) -> None:
    result = run("up", str(tmp_path / "nope.yaml"))
    assert result.exit_code == 2
    assert "nope.yaml: cannot read the spec file (No such file or directory)" in result.output


# -- AWS configuration: said before any call ------------------------------------------------


@pytest.fixture
def no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No AWS variable, no config files, no instance metadata: nothing to find."""
    import os

    for name in list(os.environ):
        if name.startswith("AWS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask 169.254.169.254


def test_missing_region_names_the_settings(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    result = run("plan", str(EXAMPLE_SPEC))
    assert result.exit_code == ExitCode.CONFIGURATION
    assert int(ExitCode.CONFIGURATION) == 3
    assert "no AWS region" in result.output
    assert "LLM_TWIN_AWS_REGION" in result.output
    assert "AWS_DEFAULT_REGION" in result.output
    no_traceback(result.output)


@pytest.mark.parametrize("command", ["plan", "up", "status", "scale", "down", "list"])
def test_missing_credentials_names_the_settings(
    no_aws: None, monkeypatch: pytest.MonkeyPatch, command: str
) -> None:
    monkeypatch.setenv("LLM_TWIN_AWS_REGION", "us-east-1")
    args = [] if command == "list" else [str(EXAMPLE_SPEC)]
    result = run(command, *args)
    assert result.exit_code == 3, result.output
    assert "no AWS credentials found" in result.output
    for name in ("AWS_ACCESS_KEY_ID", "LLM_TWIN_AWS_PROFILE"):
        assert name in result.output
    no_traceback(result.output)


def test_unknown_profile(no_aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_AWS_PROFILE", "nobody")
    result = run("list")
    assert result.exit_code == 3
    assert "profile 'nobody'" in result.output
    assert "LLM_TWIN_AWS_PROFILE" in result.output


def test_ask_on_sagemaker_without_credentials_loads_nothing(
    no_aws: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[object] = []

    def twin(settings: object) -> object:
        built.append(settings)
        raise AssertionError("the twin (and its models) must not be built")

    monkeypatch.setenv("LLM_TWIN_BACKEND", "sagemaker")
    monkeypatch.setenv("LLM_TWIN_SAGEMAKER_ENDPOINT", "llm-twin")
    monkeypatch.setenv("LLM_TWIN_AWS_REGION", "us-east-1")
    result = run("ask", "Hi?", obj=Footing(twin=twin))  # type: ignore[arg-type]
    assert result.exit_code == 3
    assert "no AWS credentials found" in result.output
    assert built == []


def test_bad_setting_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_TWIN_TOP_K", "0")
    result = run("ask", "Hi?")
    assert result.exit_code == 3
    assert "top_k" in result.output
    no_traceback(result.output)
