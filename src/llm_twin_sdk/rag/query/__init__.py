"""Query rewriting with the LLM before retrieval: self-query and query expansion.

Both steps degrade instead of failing: when the model fails or writes something unusable,
:class:`SelfQuery` returns no filters and :class:`QueryExpander` the question alone (with a
``WARNING``); only a wrong input or a misconfigured client raises. Example::

    filters = SelfQuery(client).extract("What did Okafor write?", known={"author": ["Maya Okafor"]})
    queries = QueryExpander(client, n=3).expand("How do I cut GPU cost?")  # the question + 2
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
