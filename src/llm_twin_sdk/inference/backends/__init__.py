"""Backends behind the :class:`~llm_twin_sdk.inference.backend.Backend` protocol."""
