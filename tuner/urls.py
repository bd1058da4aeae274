"""Database and tracking URLs: the psycopg 3 driver filled in, and passwords kept off screens and logs.

Every URL the tuner prints, logs or tags goes through ``mask_url``; every driver message that
may quote a URL goes through ``scrub``.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url

__all__ = ["mask_url", "normalize_url", "scrub"]


def normalize_url(url: str) -> str:
    """Return ``url`` with the psycopg 3 driver for PostgreSQL (``postgresql://`` -> ``postgresql+psycopg://``)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def mask_url(url: str) -> str:
    """Return ``url`` with its password replaced by ``***`` (for terminals, logs and MLflow)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not an SQLAlchemy URL (an MLflow http:// URI, say): mask user:pass@ by hand
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            if ":" in creds:
                return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
        return url


def scrub(text: str, url: str | None) -> str:
    """Return ``text`` with the password of ``url`` (if any) removed, for error messages from drivers."""
    if not url:
        return text
    try:
        password = make_url(url).password
    except Exception:  # not a URL SQLAlchemy can parse: it has no password we could find
        return text
    return text.replace(str(password), "***") if password else text
