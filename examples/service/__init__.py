"""The LLM Twin business microservice: FastAPI over one :class:`~llm_twin_sdk.AsyncLLMTwin`.

``uvicorn --app-dir examples --factory service.app:create_app`` (README.md beside this file).
"""

from .app import create_app
from .settings import ServiceSettings

__all__ = ["ServiceSettings", "create_app"]
