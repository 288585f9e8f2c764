"""In-test servers and fakes, with one vocabulary (see :mod:`fakes.server`).

- :class:`TGIServer` (:mod:`fakes.tgi`): a TGI-like model server over HTTP (TGI generate,
  the Messages API, LMI's ``/invocations``).
- :class:`WireServer` (:mod:`fakes.sagemaker`): SageMaker runtime on the wire (AWS errors,
  event-stream framing), backed by scripts or the real local model.
- :class:`Toolkit` (:mod:`fakes.toolkit`): the SageMaker inference toolkit running a
  ``model.tar.gz``'s ``inference.py`` (``Handler(toolkit)`` on the wire server).
- :class:`TEIServer` (:mod:`fakes.tei`): a Text Embeddings Inference server (``/info``,
  ``/embed``) with a batch limit, a delay per batch, and wrong-count / wrong-size answers.
- :class:`QdrantServer` (:mod:`fakes.qdrant`): Qdrant's REST routes the store uses.
- :class:`ScriptedBackend` (:mod:`fakes.backend`): one scripted backend for client tests.
- :class:`AWSCalls` (:mod:`fakes.calls`): the AWS operations a test's clients sent.
- :class:`HashingEmbedder` (:mod:`fakes.embedder`): word hashing, no model, for the fast lane.
- :mod:`fakes.shapes`: the bodies and events those servers send, written once.

Every server: ``fail(*faults, route=None)``, ``reply(*replies)``, ``requests``, ``to(route)``,
``routes()``, ``reset()``, ``wait_for(...)``, ``handler_errors``; answers are one write each,
with TCP_NODELAY. Tests import ``from fakes import ...`` (pytest puts ``tests/`` on the path);
benchmarks add ``tests/`` to ``sys.path`` first.
"""

from .backend import PIECES, NativeScriptedBackend, ScriptedBackend, scripted_generation
from .calls import AWSCalls
from .embedder import HashingEmbedder
from .qdrant import DENSE_CONFIG, QdrantServer, StoredPoint
from .sagemaker import Computed, Handler, Json, Llama, PartsRuntime, Stream, WireServer
from .server import Fault, Request
from .shapes import DEFAULT_TOKENS, chat_events, lmi_lines, split_at, sse_cuts, tgi_events
from .tei import TEIServer
from .tgi import TGIServer
from .toolkit import ContainerServer, HandlerFailedError, Toolkit

__all__ = [
    "AWSCalls",
    "Computed",
    "ContainerServer",
    "DEFAULT_TOKENS",
    "DENSE_CONFIG",
    "PIECES",
    "Fault",
    "Handler",
    "HashingEmbedder",
    "Json",
    "Llama",
    "NativeScriptedBackend",
    "PartsRuntime",
    "QdrantServer",
    "Request",
    "ScriptedBackend",
    "Stream",
    "StoredPoint",
    "TEIServer",
    "TGIServer",
    "Toolkit",
    "HandlerFailedError",
    "WireServer",
    "chat_events",
    "lmi_lines",
    "scripted_generation",
    "split_at",
    "sse_cuts",
    "tgi_events",
]
