"""The SageMaker requests of a deployment: pure functions of the spec, no AWS call.

Each returns the keyword arguments of one boto3 call, to read, test or reuse on its own:
``sm.create_endpoint_config(**endpoint_config_request(spec))``.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidParameterError
from .spec import EndpointSpec, RolloutSpec, gpus_of
from .waiting import ResourceKind

__all__ = [
    "check_spec",
    "component_specification",
    "deployment_config",
    "endpoint_config_request",
    "write_request",
]


def check_spec(spec: object) -> EndpointSpec:
    """``spec`` if it is an EndpointSpec SageMaker can deploy, else InvalidParameterError."""
    if not isinstance(spec, EndpointSpec):
        raise InvalidParameterError(f"expected an EndpointSpec, got {type(spec).__name__}")
    traffic, step = spec.rollout.traffic, spec.rollout.step_percent
    low, high = {"canary": (1, 50), "linear": (10, 50)}.get(traffic, (1, 99))
    if not low <= step <= high:  # SageMaker's limits per traffic pattern
        raise InvalidParameterError(
            f"rollout.step_percent: a {traffic} step must be {low}-{high}% of the fleet, got {step}"
        )
    key = spec.security.output_kms_key_id
    if key is not None and "AsyncInferenceConfig" not in endpoint_config_request(spec):
        raise InvalidParameterError(
            "security.output_kms_key_id: encrypts asynchronous-inference results, and "
            f"endpoint {spec.name!r} is real-time; drop the key or deploy it asynchronous"
        )
    parts = spec.components
    if parts is not None and parts.accelerators:
        if gpus_of(spec.instance_type) == 0:
            raise InvalidParameterError(
                f"components.accelerators: {spec.instance_type} has no GPU; set "
                "accelerators=0 (and cpu_cores) or choose a GPU instance type"
            )
        if spec.gpus != parts.accelerators:
            raise InvalidParameterError(
                f"num_gpus: each inference-component copy gets {parts.accelerators} "
                f"accelerator(s) (components.accelerators) but the container would shard over "
                f"{spec.gpus} (SM_NUM_GPUS); set num_gpus={parts.accelerators}"
            )
    return spec


def model_request(spec: EndpointSpec, image_uri: str) -> dict[str, Any]:
    """``create_model``: the container (image, environment with secrets, weights), role, and
    for a model-based endpoint its VPC and network isolation."""
    container: dict[str, Any] = {
        "Image": image_uri,
        "Environment": spec.container_environment(reveal_secrets=True),
    }
    if spec.model_data:
        container["ModelDataUrl"] = spec.model_data
    network = spec.security.network_fields() if spec.components is None else {}
    return {
        "ModelName": spec.model_name,
        "PrimaryContainer": container,
        "ExecutionRoleArn": spec.role_arn,
        **network,
        "Tags": spec.aws_tags(),
    }


def endpoint_config_request(spec: EndpointSpec) -> dict[str, Any]:
    """``create_endpoint_config``.

    Model-based: one variant holding the model. Inference components: the config carries the
    execution role, and the variant has no model but managed instance scaling and
    least-outstanding-requests routing, and the VPC and network isolation. Both carry the
    volume's KMS key when ``spec.security`` sets one; asynchronous endpoints add
    ``AsyncInferenceConfig`` (its output KMS key from ``spec.security``).
    """
    variant: dict[str, Any] = {"VariantName": spec.variant_name, "InstanceType": spec.instance_type}
    extra: dict[str, Any] = {}
    parts = spec.components
    if parts is None:
        variant |= {
            "ModelName": spec.model_name,
            "InitialInstanceCount": spec.instance_count,
            "ContainerStartupHealthCheckTimeoutInSeconds": spec.health_check_timeout_s,
        }
    else:
        variant |= {
            "InitialInstanceCount": min(
                max(spec.instance_count, parts.min_instances, 1), parts.max_instances
            ),
            "ManagedInstanceScaling": {
                "Status": "ENABLED",
                "MinInstanceCount": parts.min_instances,
                "MaxInstanceCount": parts.max_instances,
            },
            "RoutingConfig": {"RoutingStrategy": "LEAST_OUTSTANDING_REQUESTS"},
        }
        extra = {"ExecutionRoleArn": spec.role_arn, **spec.security.network_fields()}
    if spec.async_inference is not None:
        extra["AsyncInferenceConfig"] = spec.async_inference.request()
    request = {
        "EndpointConfigName": spec.endpoint_config_name,
        **extra,
        "ProductionVariants": [variant],
        "Tags": spec.aws_tags(),
    }
    return spec.security.secure_config(request)


def deployment_config(rollout: RolloutSpec) -> dict[str, Any]:
    """The blue/green ``DeploymentConfig`` of ``update_endpoint`` for ``rollout``.

    ``step_wait_s`` is the wait between traffic steps (canary, linear) or the baking period
    after the all-at-once shift; ``rollback_alarms`` roll the update back when they fire.
    """
    routing: dict[str, Any] = {
        "Type": rollout.traffic.upper(),
        "WaitIntervalInSeconds": rollout.step_wait_s,
    }
    step = {"Type": "CAPACITY_PERCENT", "Value": rollout.step_percent}
    if rollout.traffic == "canary":
        routing["CanarySize"] = step
    elif rollout.traffic == "linear":
        routing["LinearStepSize"] = step
    config: dict[str, Any] = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": routing,
            "TerminationWaitInSeconds": rollout.termination_wait_s,
        }
    }
    if rollout.rollback_alarms:
        config["AutoRollbackConfiguration"] = {
            "Alarms": [{"AlarmName": alarm} for alarm in rollout.rollback_alarms]
        }
    return config


def component_specification(spec: EndpointSpec) -> dict[str, Any]:
    """The ``Specification`` of the spec's inference component (model, start-up, compute)."""
    parts = spec.components
    if parts is None:
        raise InvalidParameterError("component_specification needs a spec with components=")
    compute: dict[str, Any] = {"MinMemoryRequiredInMb": parts.memory_mb}
    if parts.accelerators:
        compute["NumberOfAcceleratorDevicesRequired"] = parts.accelerators
    if parts.cpu_cores is not None:
        compute["NumberOfCpuCoresRequired"] = parts.cpu_cores
    return {
        "ModelName": spec.model_name,
        "StartupParameters": {
            "ContainerStartupHealthCheckTimeoutInSeconds": spec.health_check_timeout_s
        },
        "ComputeResourceRequirements": compute,
    }


def component_request(spec: EndpointSpec) -> dict[str, Any]:
    """``create_inference_component``: the spec's model on its endpoint, ``copies`` copies."""
    assert spec.components is not None
    return {
        "InferenceComponentName": spec.inference_component_name,
        "EndpointName": spec.name,
        "VariantName": spec.variant_name,
        "Specification": component_specification(spec),
        "RuntimeConfig": {"CopyCount": spec.components.copies},
        "Tags": spec.aws_tags(),
    }


def write_request(
    spec: EndpointSpec, kind: ResourceKind, action: str, image_uri: str
) -> tuple[str, dict[str, Any]]:
    """The call that creates or updates ``kind`` to run ``spec``: ``(operation, params)``,
    e.g. ``("update_endpoint", {"EndpointName": ..., "DeploymentConfig": ...})``."""
    endpoint = {"EndpointName": spec.name, "EndpointConfigName": spec.endpoint_config_name}
    match kind, action:
        case "model", "create":
            params = model_request(spec, image_uri)
        case "endpoint-config", "create":
            params = endpoint_config_request(spec)
        case "endpoint", "create":
            params = {**endpoint, "Tags": spec.aws_tags()}
        case "endpoint", "update":  # blue/green, as spec.rollout says
            params = {**endpoint, "DeploymentConfig": deployment_config(spec.rollout)}
        case "inference-component", "create":
            params = component_request(spec)
        case "inference-component", "update":  # the copy count belongs to autoscaling now
            name = spec.inference_component_name
            params = {
                "InferenceComponentName": name,
                "Specification": component_specification(spec),
            }
        case _:
            raise InvalidParameterError(f"no {action} call for a {kind}")
    return f"{action}_{kind.replace('-', '_')}", params
