"""Where the API key may go: the configured API origin, and only URLs rebuilt on it.

requests hands every URL to urllib3's ``parse_url``, and Python's ``urlsplit`` reads some URLs
differently (a backslash ends urllib3's authority but not urlsplit's, so
``http://other:1\\@api:2/x`` is "api" to one and "other" to the other). The check and the
request therefore use one parser, urllib3's, and a URL to follow is never sent as given: once
``parse_url`` has shown that it is clean and on the origin, the URL sent is the configured
origin followed by the path and query ``parse_url`` read from it.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from urllib3.exceptions import LocationParseError
from urllib3.util import Url, parse_url

# VideoDB's job URLs are short; a bound keeps a hostile one out of the workflow's input
# (StartExecution takes at most 256 KiB) and out of logs.
MAX_URL_LENGTH = 2048
DEFAULT_PORTS = {"http": 80, "https": 443}
# Printable ASCII without space or backslash: refuses whitespace, control characters,
# non-ASCII (IDNA) hosts and the backslash the two parsers disagree on.
_CLEAN = re.compile(r"[!-\[\]-~]+")
_AUTHORITY = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)")


class UnsafeUrl(ValueError):
    """A URL the key must not be sent to; the text says which rule it broke (never the URL)."""


class Origin(NamedTuple):
    """(scheme, host, port) of an http(s) URL, the port filled in from the scheme's default."""

    scheme: str
    host: str
    port: int

    @property
    def base(self) -> str:
        """``scheme://host[:port]``, the port left out when it is the scheme's default."""
        port = "" if self.port == DEFAULT_PORTS[self.scheme] else f":{self.port}"
        return f"{self.scheme}://{self.host}{port}"


def parse_origin(url: str) -> Origin:
    """The origin of a clean absolute http(s) URL; raises :class:`UnsafeUrl` otherwise."""
    return _origin_of(_parse_clean(url))


def url_on_origin(url: str, origin: Origin) -> str:
    """The URL to send for ``url``: ``origin`` plus the path and query urllib3 reads in ``url``.

    Raises :class:`UnsafeUrl` unless ``url`` is clean (see :func:`parse_origin`) and its
    scheme, host and port are ``origin``'s. A fragment is dropped (it is never sent anyway).
    """
    parsed = _parse_clean(url)
    if _origin_of(parsed) != origin:
        raise UnsafeUrl("URL is not on the configured API origin (scheme, host, port)")
    sent = origin.base + (parsed.path or "/") + (f"?{parsed.query}" if parsed.query is not None else "")
    # By construction this holds; checked anyway with the parser that will send the request.
    if _origin_of(parse_url(sent)) != origin:
        raise UnsafeUrl("rebuilt URL is not on the configured API origin")
    return sent


def _parse_clean(url: object) -> Url:
    if not isinstance(url, str) or not url:
        raise UnsafeUrl("URL is not a non-empty string")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"URL is longer than {MAX_URL_LENGTH} characters")
    if not _CLEAN.fullmatch(url):
        raise UnsafeUrl("URL has whitespace, control, non-ASCII or backslash characters")
    authority = _AUTHORITY.match(url)
    if authority is None:
        raise UnsafeUrl("URL is not absolute (scheme://host...)")
    # urllib3 drops an empty userinfo and decodes a percent-encoded host; refuse both rather
    # than trust a normalisation the check and a reader of the URL may not share.
    if "@" in authority.group(1) or "%" in authority.group(1):
        raise UnsafeUrl("URL has userinfo or percent-encoding in its authority")
    try:
        parsed = parse_url(url)
    except LocationParseError:
        raise UnsafeUrl("URL cannot be parsed") from None
    if parsed.auth is not None:
        raise UnsafeUrl("URL has userinfo")
    return parsed


def _origin_of(parsed: Url) -> Origin:
    scheme = (parsed.scheme or "").lower()
    if scheme not in DEFAULT_PORTS or not parsed.host:
        raise UnsafeUrl("URL is not an http(s) URL with a host")
    return Origin(scheme, parsed.host.lower(), parsed.port or DEFAULT_PORTS[scheme])
