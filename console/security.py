"""Who is calling the API, and what their roles allow.

The console's session middleware puts the logged-in ``User`` on ``request.state.user``;
every route declares the roles it admits with ``Depends(require_roles(...))``. A route with
no such dependency is a bug (a test enumerates the routes).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from fastapi import Request

from cti.errors import ApiError

# "department": a member unit's user (tickets dispatched to its unit, ``department_id``).
ROLES = ("agent", "leader", "window", "supervisor", "admin", "department")


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    roles: frozenset[str] = field(default_factory=frozenset)
    agent_id: str | None = None  # the agent identity for agents and leaders
    window_id: str | None = None  # the service window for window staff
    department_id: str | None = None  # the member unit of department users

    def has(self, *roles: str) -> bool:
        return "admin" in self.roles or bool(self.roles.intersection(roles))


def current_user(request: Request) -> User:
    user = getattr(request.state, "user", None)
    if user is None:
        raise ApiError(401, "not-authenticated", "log in first")
    return user  # type: ignore[no-any-return]


def require_roles(*roles: str) -> Callable[[Request], User]:
    """A dependency admitting users with any of ``roles`` (administrators always pass)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def dependency(request: Request) -> User:
        user = current_user(request)
        if not user.has(*roles):
            raise ApiError(
                403, "forbidden", "your role does not allow this", {"needs": list(roles)}
            )
        return user

    dependency.required_roles = roles  # type: ignore[attr-defined]  # read by the route audit test
    return dependency


# --- who is on the other end ---------------------------------------------------------------

# Headers a proxy adds. uvicorn rewrites the client address from X-Forwarded-For only when
# the peer is one of ``[console] trusted_proxies`` (see ``Hotline._start_console``); any of
# these on a request says that it did not come straight from its client.
PROXY_HEADERS = ("x-forwarded-for", "forwarded", "x-real-ip", "x-forwarded-host")


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Clients:
    """Where a request comes from, given the trusted proxies. ``request.client`` is already
    what uvicorn made of X-Forwarded-For (believed only from those proxies)."""

    def __init__(self, trusted_proxies: Iterable[str] = ()) -> None:
        self._networks = [ipaddress.ip_network(p, strict=False) for p in trusted_proxies]

    @staticmethod
    def address(request: Request) -> str:
        return request.client.host if request.client else ""

    def is_proxy(self, host: str) -> bool:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)

    def limiter_address(self, request: Request) -> str:
        """The address a login is counted against; "" when only a proxy's own address is
        known (it sent no X-Forwarded-For): all of its clients share it, and counting it
        would let one guesser lock everybody out."""
        host = self.address(request)
        return "" if self.is_proxy(host) else host

    def straight_from_loopback(self, request: Request) -> bool:
        """A client on this machine, talking to the console directly: no proxy header, and
        not a proxy on this machine relaying somebody else."""
        host = self.address(request)
        if not is_loopback(host) or self.is_proxy(host):
            return False
        return not any(name in request.headers for name in PROXY_HEADERS)
