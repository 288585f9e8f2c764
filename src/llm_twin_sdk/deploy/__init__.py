"""SageMaker control plane: endpoint specs, container images, deployment and IAM."""
