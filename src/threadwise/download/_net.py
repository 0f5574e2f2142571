"""Who a request goes through and what it carries: proxies (the environment's by default),
TLS settings, default headers, basic auth and .netrc, cookies from a Netscape cookie file."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Mapping

from .._typing import TYPE_CHECKING, Any, cast
from ._request import UrlParts, split_url

if TYPE_CHECKING:
    import http.cookiejar
    import netrc as netrc_module

# Modules are imported where they are needed: a plain download imports none of urllib3,
# http.client, http.cookiejar or urllib.request (tens of milliseconds of start-up).

_SCHEME_PORTS = {"http": 80, "https": 443}


def basic_auth(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def load_cookie_jar(source: object) -> http.cookiejar.CookieJar | None:
    """A cookie jar from a Netscape ``cookies.txt`` path (what wget, curl and browsers' export
    tools write), or the jar given."""
    if source is None:
        return None
    cookiejar = sys.modules.get("http.cookiejar")  # a jar given means it is imported
    if cookiejar is not None and isinstance(source, cookiejar.CookieJar):
        return cast("http.cookiejar.CookieJar", source)
    if isinstance(source, str | os.PathLike):
        path = os.fspath(source)
        with open(path, encoding="utf-8", errors="replace") as f:
            return _parse_netscape(f.read().splitlines(), path)
    raise TypeError(f"cookies must be a cookie file path, a CookieJar or None, got {source!r}")


def _parse_netscape(lines: list[str], path: str) -> http.cookiejar.CookieJar:
    """Our own reader: http.cookiejar's MozillaCookieJar drops the expiry 0 that curl and wget
    write for session cookies, and rejects ``#HttpOnly_`` lines."""
    import http.cookiejar

    jar = http.cookiejar.CookieJar()
    now = time.time()
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if line.startswith("#HttpOnly_"):
            line = line[len("#HttpOnly_") :]
        elif not line or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) != 7:
            raise ValueError(
                f"cookies: line {number} of {path!r} is not a Netscape cookie file line "
                "(7 fields separated by tabs)"
            )
        domain, _, cookie_path, secure, expires, name, value = fields
        expiry = int(expires) if expires.strip().isdigit() else 0
        if expiry and expiry < now:
            continue
        jar.set_cookie(
            http.cookiejar.Cookie(
                version=0,
                name=name,
                value=value,
                port=None,
                port_specified=False,
                domain=domain,
                domain_specified=domain.startswith("."),
                domain_initial_dot=domain.startswith("."),
                path=cookie_path,
                path_specified=True,
                secure=secure.upper() == "TRUE",
                expires=expiry or None,
                discard=not expiry,
                comment=None,
                comment_url=None,
                rest={},
            )
        )
    return jar


def _bypass(host: str, port: int | None, no_proxy: str) -> bool:
    """curl's no_proxy rules: ``*``, exact hosts, domain suffixes (``.example.com`` or
    ``example.com`` both match ``a.example.com``), ``host:port``."""
    host = host.lower().strip("[]")
    for entry in no_proxy.replace(" ", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == "*":
            return True
        name, _, entry_port = entry.rpartition(":") if entry.count(":") == 1 else (entry, "", "")
        if entry_port and (not entry_port.isdigit() or int(entry_port) != port):
            continue
        name = name.lstrip(".").strip("[]")
        if host == name or host.endswith("." + name):
            return True
    return False


class Network:
    """The pools, proxy choice and per-request headers of one batch."""

    def __init__(
        self,
        *,
        workers: int,
        per_host: int,
        timeout: float,
        headers: Mapping[str, str],
        auth: tuple[str, str] | None,
        netrc: bool | str | os.PathLike[str],
        cookies: http.cookiejar.CookieJar | None,
        proxy: str | bool | None,
        no_proxy: str | None,
        verify: bool,
        ca_certificate: str | None,
    ) -> None:
        self.headers = dict(headers)
        self.auth = basic_auth(*auth) if auth is not None else None
        self.cookies = cookies
        self._netrc_source = netrc
        self._netrc: netrc_module.netrc | None = None
        self._direct: Any = None
        self._netrc_lock = threading.Lock()
        if netrc is not False:
            self._netrc_entry("")  # a missing or broken file is an error now, not per request
        self._pool_args: dict[str, Any] = {
            "num_pools": max(16, workers),
            "maxsize": per_host,
            "retries": False,
            "timeout": timeout,
        }
        if not verify:
            self._pool_args["cert_reqs"] = "CERT_NONE"
            self._pool_args["assert_hostname"] = False
        elif ca_certificate is not None:
            self._pool_args["ca_certs"] = ca_certificate
        # Proxies: explicit, or the environment's (http_proxy, https_proxy, all_proxy, no_proxy).
        self._proxies: dict[str, str] = {}
        if proxy is None:
            self._proxies = _environment_proxies()
        elif isinstance(proxy, str) and proxy:
            self._proxies = {"all": proxy}
        elif proxy is not False and proxy != "":
            raise TypeError(f"proxy must be a proxy URL, False or None, got {proxy!r}")
        if no_proxy is None:
            no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY") or ""
        self.no_proxy = no_proxy
        self._managers: dict[str, Any] = {}
        self._managers_lock = threading.Lock()

    @property
    def direct(self) -> Any:
        """urllib3's PoolManager, made (and urllib3 imported) on first use."""
        with self._managers_lock:
            if self._direct is None:
                import urllib3

                self._direct = urllib3.PoolManager(**self._pool_args)
            return self._direct

    def proxy_for(self, url: str) -> str | None:
        if not self._proxies:
            return None
        parts = split_url(url)
        scheme = parts.scheme.lower()
        proxy = self._proxies.get(scheme) or self._proxies.get("all")
        if not proxy:
            return None
        if self.no_proxy and _bypass(parts.hostname or "", parts.port, self.no_proxy):
            return None
        return proxy if "://" in proxy else "http://" + proxy

    def manager(self, url: str) -> Any:
        """The PoolManager (direct) or ProxyManager ``url`` goes through."""
        proxy = self.proxy_for(url)
        if proxy is None:
            return self.direct
        with self._managers_lock:
            manager = self._managers.get(proxy)
            if manager is None:
                parts = split_url(proxy)
                proxy_headers = None
                if parts.username is not None:
                    from urllib.parse import unquote

                    proxy_headers = {
                        "Proxy-Authorization": basic_auth(
                            unquote(parts.username), unquote(parts.password or "")
                        )
                    }
                import urllib3

                manager = urllib3.ProxyManager(
                    proxy, proxy_headers=proxy_headers, **self._pool_args
                )
                self._managers[proxy] = manager
            return manager

    @property
    def plain(self) -> bool:
        """No credentials or cookies to add: every request of a URL carries the same headers."""
        return self.auth is None and self.cookies is None and self._netrc_source is False

    def request_headers(
        self, url: str, extra: Mapping[str, str] | None, first_host: str | None
    ) -> dict[str, str]:
        """The headers of one request: defaults, the batch's and the URL's own, credentials
        (only for the host the download started at, or from .netrc) and cookies."""
        headers = dict(self.headers)
        if extra:
            headers.update(extra)
        if not any(k.lower() == "authorization" for k in headers):
            auth = self._auth_for(url, first_host)
            if auth is not None:
                headers["Authorization"] = auth
        if self.cookies is not None:
            # Through urllib's Request so the jar applies its domain, path and secure rules.
            import urllib.request

            probe = urllib.request.Request(_strip_userinfo(url))
            self.cookies.add_cookie_header(probe)
            cookie = probe.get_header("Cookie")
            if cookie:
                headers["Cookie"] = cookie
        return headers

    def _auth_for(self, url: str, first_host: str | None) -> str | None:
        parts = split_url(url)
        host = (parts.hostname or "").lower()
        if parts.username is not None:
            from urllib.parse import unquote

            return basic_auth(unquote(parts.username), unquote(parts.password or ""))
        if self.auth is not None and host == first_host:
            return self.auth  # never sent on to another host a redirect points at
        if self._netrc_source is not False:
            entry = self._netrc_entry(host)
            if entry is not None:
                return entry
        return None

    def _netrc_entry(self, host: str) -> str | None:
        import netrc as netrc_module

        with self._netrc_lock:
            if self._netrc is None:
                source = self._netrc_source
                path = (
                    os.fspath(source)
                    if not isinstance(source, bool)
                    else os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
                )
                try:
                    self._netrc = netrc_module.netrc(path)
                except FileNotFoundError:
                    if not isinstance(source, bool):
                        raise ValueError(f"netrc: no such file: {path!r}") from None
                    self._netrc = netrc_module.netrc.__new__(netrc_module.netrc)
                    self._netrc.hosts = {}
                    self._netrc.macros = {}
                except netrc_module.NetrcParseError as exc:
                    raise ValueError(f"netrc: cannot parse {path!r}: {exc}") from None
            found = self._netrc.authenticators(host)
        if found is None:
            return None
        login, _, password = found
        return basic_auth(login or "", password or "")

    def clear(self) -> None:
        with self._managers_lock:
            if self._direct is not None:
                self._direct.clear()
            for manager in self._managers.values():
                manager.clear()


def _environment_proxies() -> dict[str, str]:
    """``http_proxy``, ``https_proxy`` and ``all_proxy`` (lower case wins, as in curl and
    urllib); ``HTTP_PROXY`` is ignored in a CGI script, where a request header can set it."""
    found: dict[str, str] = {}
    for upper in (True, False):  # lower case last: it wins
        for scheme in ("http", "https", "all"):
            name = f"{scheme}_proxy"
            if upper:
                if scheme == "http" and "REQUEST_METHOD" in os.environ:
                    continue
                name = name.upper()
            value = os.environ.get(name)
            if value:
                found[scheme] = value
    return found


def _strip_userinfo(url: str) -> str:
    parts = split_url(url)
    if parts.username is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    assert not isinstance(parts, UrlParts)  # split_url leaves URLs with a user to urlsplit
    return parts._replace(netloc=netloc).geturl()


def strip_userinfo(url: str) -> str:
    """``url`` without ``user:password@`` (sent as an Authorization header instead)."""
    return _strip_userinfo(url)
