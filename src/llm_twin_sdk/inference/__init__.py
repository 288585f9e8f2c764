"""Text generation: :class:`InferenceClient` over a :class:`Backend`."""
