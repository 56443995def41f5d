"""Whose credentials go where: Alpaca's keys to Alpaca's own hosts over TLS, and nowhere else.

One rule, below every place that builds an alpaca-py client (the Alpaca bar source, the broker,
the live stream and its backfills), so that no definition, run config, launchpad edit or command
line can send Alpaca's keys to another host:

* Alpaca's keys are the *values* of ``ALPACA_API_KEY`` / ``ALPACA_SECRET_KEY`` in the environment,
  however a resource got them (``dg.EnvVar``, ``{"env": "ALPACA_API_KEY"}`` in run config, or the
  key pasted as a literal): values are compared, not names.
* They go only to ``https://`` or ``wss://`` URLs whose host is ``alpaca.markets`` or one of its
  subdomains, or to alpaca-py's default endpoint (no URL, which is Alpaca's).
* Any other URL — a recycler, a stand-in, ``http://data.alpaca.markets``, a look-alike host — gets
  the credentials configured for it when they are not Alpaca's, else the recycler's
  (``PAIRS_RECYCLER_KEY`` / ``PAIRS_RECYCLER_SECRET``), else an anonymous placeholder. If Alpaca's
  keys would go there, the request is refused with :class:`CredentialsDestinationError`, one line
  naming the resource and the URL (its password masked) — never a key.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import urlsplit

from pairs_assets.errors import PairsError
from pairs_assets.util import redact_url

ENV_API_KEY = "ALPACA_API_KEY"
ENV_SECRET_KEY = "ALPACA_SECRET_KEY"
ENV_RECYCLER_KEY = "PAIRS_RECYCLER_KEY"
ENV_RECYCLER_SECRET = "PAIRS_RECYCLER_SECRET"
#: Placeholder credentials sent to a recycler that checks none (Alpaca's client insists on some).
ANONYMOUS_RECYCLER_KEY = "recycler"
#: Alpaca's domain: its keys are sent to this host and its subdomains only, and only over TLS.
ALPACA_DOMAIN = "alpaca.markets"


class CredentialsDestinationError(PairsError, ValueError):
    """Alpaca's keys would go to a URL that is not Alpaca's over TLS; names the resource and the URL."""


def is_alpaca_url(url: str | None) -> bool:
    """Whether ``url`` is one of Alpaca's own endpoints reached over TLS.

    Parameters
    ----------
    url : str or None
        A stream (``wss://``) or REST (``https://``) URL; ``None`` stands for alpaca-py's default
        endpoint, which is Alpaca's (``wss://stream.data.alpaca.markets``, ``https://data.alpaca.markets``).

    Returns
    -------
    bool
        True only for the schemes ``wss``/``https`` and the host ``alpaca.markets`` or one of its
        subdomains (the host as a URL parser reads it: user-info, paths and fragments do not count).
    """
    if url is None:
        return True
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").rstrip(".").lower()
    except ValueError:
        return False
    return parts.scheme.lower() in ("wss", "https") and (host == ALPACA_DOMAIN or host.endswith("." + ALPACA_DOMAIN))


def alpaca_key_values(environ: Mapping[str, str] | None = None) -> frozenset[str]:
    """The values of ``ALPACA_API_KEY`` and ``ALPACA_SECRET_KEY`` that are set (empty ones ignored)."""
    env = os.environ if environ is None else environ
    return frozenset(v.strip() for v in (env.get(ENV_API_KEY), env.get(ENV_SECRET_KEY)) if v and v.strip())


def credentials_for_destination(
    resource: str,
    url: str | None,
    key: str | None,
    secret: str | None,
    environ: Mapping[str, str] | None = None,
    alpaca_keys: frozenset[str] = frozenset(),
) -> tuple[str | None, str | None]:
    """The (key, secret) that may be sent to ``url``, or a refusal.

    Parameters
    ----------
    resource : str
        Who asks (``bar_source``, ``broker``, ``stream``): named in the refusal.
    url : str or None
        Where the client will connect; None is alpaca-py's default, Alpaca's own endpoint.
    key, secret : str or None
        The credentials the resource was configured with.
    environ : mapping, optional
        The environment holding Alpaca's keys and the recycler's (default: ``os.environ``).
    alpaca_keys : frozenset of str, optional
        Further values known to be Alpaca's (a stream's own copy of the keys).

    Returns
    -------
    tuple
        ``(key, secret)`` unchanged for Alpaca's URL (None where unset: the caller says which
        variable is missing); for any other URL the configured ones, or the recycler's from the
        environment, or the anonymous placeholder.

    Raises
    ------
    CredentialsDestinationError
        Alpaca's keys (by value) would go to a URL that is not Alpaca's over TLS.
    """
    if is_alpaca_url(url):
        return key, secret
    env = os.environ if environ is None else environ
    if not (key and secret):
        key = env.get(ENV_RECYCLER_KEY) or ANONYMOUS_RECYCLER_KEY
        secret = env.get(ENV_RECYCLER_SECRET) or ANONYMOUS_RECYCLER_KEY
    # by value, whitespace aside: a key pasted with a trailing newline is still Alpaca's key
    known = alpaca_key_values(env) | {k.strip() for k in alpaca_keys if k and k.strip()}
    if {str(key).strip(), str(secret).strip()} & known:
        raise CredentialsDestinationError(
            f"{resource}: refused to send Alpaca's keys ({ENV_API_KEY}/{ENV_SECRET_KEY}) to {redact_url(str(url))}: "
            f"they go only to Alpaca's own hosts (*.{ALPACA_DOMAIN}) over https/wss; give that endpoint its own keys "
            f"({ENV_RECYCLER_KEY}/{ENV_RECYCLER_SECRET} or other values) or none"
        )
    return key, secret
