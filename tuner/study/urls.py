"""Database and tracking URLs: the psycopg 3 driver filled in, and passwords kept off screens and logs.

Every URL the tuner prints, logs or tags goes through ``mask_url``; every driver message that
may quote a URL goes through ``scrub``.
"""

from __future__ import annotations

import re
from urllib.parse import unquote_plus, urlsplit

__all__ = ["DATABASE_SCHEMES", "mask_url", "normalize_url", "scrub", "secrets_of"]

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")


def normalize_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver for PostgreSQL (``postgresql://`` -> ``postgresql+psycopg://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


# Query parameters that carry a credential (libpq's password and sslpassword, tokens, keys, secrets).
_SECRET_PARAMS = re.compile(r"pass|pwd|token|secret|key|sig|credential|auth", re.IGNORECASE)
_QUERY_PAIR = re.compile(r"([^&;=]*)=([^&;]*)")


def _secret_param(name: str) -> bool:
    return bool(_SECRET_PARAMS.search(unquote_plus(name)))


def mask_url(url: str) -> str:
    """Return ``url`` with every credential replaced by ``***`` (for terminals, logs and MLflow).

    The password of the user information (``user:***@``; a lone user part of an http(s) URL is
    often a token, so it goes too, while a database URL's lone user is a user name) and the value
    of every query parameter that carries a credential (``password=``, ``sslpassword=``,
    ``token=``, ``api_key=`` ...).

    >>> mask_url("postgresql://tuner:pw@db:5432/hpo?sslmode=require&password=pw2")
    'postgresql://tuner:***@db:5432/hpo?sslmode=require&password=***'
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    masked = url
    if "@" in parts.netloc:
        userinfo, host = parts.netloc.rsplit("@", 1)
        if ":" in userinfo:
            userinfo = f"{userinfo.split(':', 1)[0]}:***"
        elif parts.scheme.split("+", 1)[0].lower() not in DATABASE_SCHEMES:
            userinfo = "***"
        masked = masked.replace(f"//{parts.netloc}", f"//{userinfo}@{host}", 1)
    if parts.query:
        query = _QUERY_PAIR.sub(lambda m: f"{m.group(1)}=***" if _secret_param(m.group(1)) else m.group(0),
                                parts.query)
        # The query is the URL's tail (before a fragment): replaced there, so the path is never touched.
        head, tail = masked.rsplit(f"?{parts.query}", 1)
        masked = f"{head}?{query}{tail}"
    return masked


def secrets_of(url: str | None) -> list[str]:
    """Return the credentials ``url`` holds: its password and its secret query values, as written and decoded."""
    if not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rsplit("@", 1)[0]
        found.append(userinfo.split(":", 1)[1] if ":" in userinfo else
                     ("" if parts.scheme.split("+", 1)[0].lower() in DATABASE_SCHEMES else userinfo))
    found += [m.group(2) for m in _QUERY_PAIR.finditer(parts.query) if _secret_param(m.group(1))]
    spelled = {variant for secret in found if secret for variant in (secret, unquote_plus(secret))}
    return sorted(spelled, key=len, reverse=True)


def scrub(text: str, url: str | None) -> str:
    """Return ``text`` with every credential of ``url`` replaced by ``***``, for error messages from drivers."""
    for secret in secrets_of(url):
        text = text.replace(secret, "***")
    return text
