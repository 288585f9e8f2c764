"""Query rewriting with the LLM before retrieval: self-query and query expansion.

Both steps *degrade* instead of failing: when the model fails or writes something unusable,
:class:`SelfQuery` returns no filters and :class:`QueryExpander` the question alone, with a
``WARNING`` on the ``llm_twin_sdk.rag.query`` loggers. Only a wrong input (an empty question,
unknown ``known`` fields) or a misconfigured client (``ConfigurationError``) raises.

Example::

    client = InferenceClient(LocalBackend())
    filters = SelfQuery(client).extract("What did Okafor write?", known={"author": ["Maya Okafor"]})
    queries = QueryExpander(client, n=3).expand("How do I cut GPU cost?")  # the question + 2

The parsers :func:`parse_metadata` and :func:`parse_phrasings` are pure, for other prompts.
"""

from .expansion import EXPANSION_SEPARATOR, QueryExpander, parse_phrasings
from .metadata import METADATA_FIELDS, QueryMetadata, parse_metadata
from .self_query import SelfQuery

__all__ = [
    "EXPANSION_SEPARATOR",
    "METADATA_FIELDS",
    "QueryExpander",
    "QueryMetadata",
    "SelfQuery",
    "parse_metadata",
    "parse_phrasings",
]
