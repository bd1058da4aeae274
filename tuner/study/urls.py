"""Database and tracking URLs: the psycopg 3 driver filled in, and passwords kept off screens and logs.

Every URL the tuner prints, logs or tags goes through ``mask_url``; every driver message that
may quote a URL goes through ``scrub``.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

__all__ = ["DATABASE_SCHEMES", "mask_url", "normalize_url", "scrub"]

DATABASE_SCHEMES = ("sqlite", "postgresql", "postgres", "mysql", "mssql", "oracle")


def normalize_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver for PostgreSQL (``postgresql://`` -> ``postgresql+psycopg://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (for terminals, logs and MLflow)."""
    scheme = url.split("://", 1)[0].split("+", 1)[0].lower() if "://" in url else ""
    if scheme in DATABASE_SCHEMES:
        try:
            return make_url(url).render_as_string(hide_password=True)
        except (ArgumentError, ValueError):  # malformed: mask it by hand below
            pass
    try:  # an MLflow http(s):// URI, say: mask its user information by hand
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, host = parts.netloc.rsplit("@", 1)
    # user:password keeps the user; a lone user part is often a token (https://TOKEN@host), so it goes too.
    shown = f"{userinfo.split(':', 1)[0]}:***" if ":" in userinfo else "***"
    return urlunsplit(parts._replace(netloc=f"{shown}@{host}"))


def scrub(text: str, url: str | None) -> str:
    """Return ``text`` with the password of ``url`` (if any) removed, for error messages from drivers."""
    if not url:
        return text
    try:
        password = make_url(url).password
    except (ArgumentError, ValueError):  # not a URL SQLAlchemy can parse: it has no password we could find
        return text
    return text.replace(str(password), "***") if password else text
