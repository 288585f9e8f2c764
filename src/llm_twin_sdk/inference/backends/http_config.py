"""HttpBackend's connection settings: base URL, API key and headers, TLS verification and client
certificates, timeouts. Every problem is a :class:`~llm_twin_sdk.errors.ConfigurationError`
that never echoes a secret."""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import httpx
from pydantic import SecretStr

from ..._version import __version__
from ...errors import ConfigurationError
from ...types import Timeouts

__all__ = [
    "CertTypes",
    "PathLike",
    "check_base_url",
    "client_options",
    "httpx_timeout",
    "is_tls_setup_error",
]

PathLike: TypeAlias = "str | Path"
CertTypes: TypeAlias = "PathLike | tuple[PathLike, PathLike] | tuple[PathLike, PathLike, str]"
"""A client certificate: ``cert.pem`` (key included), ``(cert, key)`` or
``(cert, key, password)``."""

_SECRET_HEADER = re.compile(r"auth|key|token|secret|cookie|password", re.IGNORECASE)
_ROUTE_SUFFIXES = (
    "/v1/chat/completions",
    "/v1/completions",
    "/v1/models",
    "/generate",
    "/generate_stream",
    "/invocations",
)


def check_base_url(base_url: str, *, strip_v1: bool) -> str:
    """``scheme://host[:port][/prefix]`` without a trailing slash (nor ``/v1`` for openai)."""
    if not isinstance(base_url, str) or not base_url:
        raise ConfigurationError("base_url must be a non-empty string like 'http://host:8080'")
    if any(char.isspace() or ord(char) < 32 for char in base_url):
        raise ConfigurationError("base_url must not contain spaces or control characters")
    if "?" in base_url or "#" in base_url:
        raise ConfigurationError(
            "base_url must not have a query ('?...') or fragment ('#...'): pass the server's "
            "root address, like 'http://host:8080'"
        )
    try:
        url = httpx.URL(base_url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ConfigurationError(f"base_url is not a valid URL: {exc}") from None
    if url.userinfo:
        raise ConfigurationError(
            "base_url must not contain credentials ('user:password@'); pass api_key= instead"
        )
    if url.scheme not in {"http", "https"}:
        raise ConfigurationError(f"base_url must start with http:// or https://, got {base_url!r}")
    if not url.host:
        raise ConfigurationError(f"base_url has no host: {base_url!r}")
    if url.port is not None and not 0 < url.port < 65536:
        raise ConfigurationError(f"base_url has an invalid port: {base_url!r}")
    path = url.raw_path.decode("ascii").rstrip("/")
    for suffix in _ROUTE_SUFFIXES:
        if path.endswith(suffix):
            raise ConfigurationError(
                f"base_url ends with the route {suffix!r}: pass the server's root address "
                f"(without {suffix!r}); the backend adds the route itself"
            )
    if strip_v1 and path.endswith("/v1"):
        path = path[: -len("/v1")]  # as given to the openai client: accepted, the route adds it
    return f"{url.scheme}://{url.netloc.decode('ascii')}{path}"


def client_options(
    *,
    api_key: SecretStr | str | None,
    headers: Mapping[str, str] | None,
    verify: bool | PathLike | ssl.SSLContext,
    cert: CertTypes | None,
    timeout: Timeouts,
    trust_env: bool,
) -> tuple[dict[str, Any], list[str]]:
    """The ``httpx`` client options, and the secrets (key, secret-like headers) to scrub from
    messages."""
    request_headers = {"User-Agent": f"llm-twin-sdk/{__version__}"}
    user_headers = dict(headers or {})
    secrets = [v for k, v in user_headers.items() if _SECRET_HEADER.search(k) and len(v) >= 4]
    if api_key is not None:
        key = api_key.get_secret_value() if isinstance(api_key, SecretStr) else api_key
        if not isinstance(key, str) or not key or any(not 33 <= ord(c) <= 126 for c in key):
            raise ConfigurationError(
                "api_key must be a non-empty string of printable ASCII characters without "
                "spaces (the value is not shown)"
            )
        if any(name.lower() == "authorization" for name in user_headers):
            raise ConfigurationError(
                "pass the token either as api_key= or as an Authorization header, not both"
            )
        secrets.append(key)
        request_headers["Authorization"] = f"Bearer {key}"
    request_headers.update(user_headers)
    options = {
        "headers": request_headers,
        "verify": _ssl_setting(verify, cert),
        "timeout": httpx_timeout(timeout),
        "trust_env": trust_env,
        "follow_redirects": False,
    }
    return options, secrets


def _ssl_setting(
    verify: bool | PathLike | ssl.SSLContext, cert: CertTypes | None
) -> bool | ssl.SSLContext:
    """What httpx's ``verify=`` takes: True/False, or an SSLContext for CA bundles and certs."""
    if isinstance(verify, ssl.SSLContext):
        if cert is not None:
            raise ConfigurationError(
                "pass either an ssl.SSLContext as verify= or cert=, not both: load the client "
                "certificate into your context with load_cert_chain()"
            )
        return verify
    if isinstance(verify, bool) and cert is None:
        return verify
    context = _verifying_context(verify)
    if cert is not None:
        if isinstance(cert, tuple):
            certfile, keyfile = str(cert[0]), str(cert[1])
            password = cert[2] if len(cert) == 3 else None
        else:
            certfile, keyfile, password = str(cert), None, None
        try:
            context.load_cert_chain(certfile, keyfile, password)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigurationError(
                f"cannot load the client certificate {certfile!r}: "
                f"{getattr(exc, 'strerror', None) or exc.__class__.__name__}"
            ) from exc
    return context


def _verifying_context(verify: bool | PathLike) -> ssl.SSLContext:
    if isinstance(verify, bool):
        if not verify:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            return context
        import certifi

        return ssl.create_default_context(cafile=certifi.where())
    location = Path(verify).expanduser()
    if not location.exists():
        raise ConfigurationError(f"verify={str(location)!r}: no such CA bundle file or directory")
    try:
        if location.is_dir():
            return ssl.create_default_context(capath=str(location))
        return ssl.create_default_context(cafile=str(location))
    except (ssl.SSLError, OSError) as exc:
        raise ConfigurationError(f"cannot load the CA bundle {str(location)!r}: {exc}") from exc


def httpx_timeout(timeouts: Timeouts) -> httpx.Timeout:
    return httpx.Timeout(
        connect=timeouts.connect_s,
        read=timeouts.read_s,
        write=timeouts.read_s,
        pool=timeouts.connect_s,
    )


def is_tls_setup_error(exc: httpx.HTTPError) -> bool:
    """A failed TLS handshake: certificate not trusted, or the server wants a client cert."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, ssl.SSLError):
            # In TLS 1.3 a rejected client certificate arrives as an alert on the first read.
            return isinstance(exc, httpx.ConnectError) or "CERTIFICATE" in str(seen).upper()
        seen = seen.__cause__ or seen.__context__
    return False
