"""Query rewriting with the LLM before retrieval: self-query and query expansion.

Both steps degrade instead of failing: when the model fails or writes something unusable,
:class:`SelfQuery` returns no filters and :class:`QueryExpander` the question alone (with a
``WARNING``); only a wrong input or a misconfigured client raises. Example::

    filters = SelfQuery(client).extract("What did Okafor write?", known={"author": ["Maya Okafor"]})
    queries = QueryExpander(client, n=3).expand("How do I cut GPU cost?")  # the question + 2
    weighted = QueryExpander(client, n=3).phrasings("How do I cut GPU cost?")  # + weights

Both need a capable model (several billion parameters) to help retrieval; they are off by
default, and their output is checked so that a small model's mistakes cost little: self-query
keeps only values the question names (and the store holds), and the pipeline searches only
phrasings close to the question, weighted below it.
"""

from .expansion import (
    EXPANSION_SEPARATOR,
    EXPANSION_WEIGHT,
    MIN_SIMILARITY,
    Phrasing,
    QueryExpander,
    parse_phrasings,
)
from .metadata import METADATA_FIELDS, QueryMetadata, parse_metadata
from .self_query import SelfQuery

__all__ = [
    "EXPANSION_SEPARATOR",
    "EXPANSION_WEIGHT",
    "METADATA_FIELDS",
    "MIN_SIMILARITY",
    "Phrasing",
    "QueryExpander",
    "QueryMetadata",
    "SelfQuery",
    "parse_metadata",
    "parse_phrasings",
]
