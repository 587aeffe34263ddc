"""Who is calling the API, and what their roles allow.

The console's session middleware puts the logged-in ``User`` on ``request.state.user``;
every route declares the roles it admits with ``Depends(require_roles(...))``. A route with
no such dependency is a bug (a test enumerates the routes).
"""

from __future__ import annotations

from collections.abc import Callable
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
