"""Errors a user can cause, with messages that name the field, the value and what is allowed."""

from __future__ import annotations


class OrbitLabError(Exception):
    """Base class of every error OrbitLab raises on purpose."""


class SettingsError(OrbitLabError):
    """One or more stack settings are invalid.

    ``problems`` holds one line per problem, each starting with the field path,
    e.g. ``orbitlab:sectors[1].subnets[0]: '10.0.0.1/24' has host bits set ...``.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class AllocationError(OrbitLabError):
    """A tag or an address cannot be allocated (taken, out of range, exhausted).

    ``sector`` names the Sector concerned, when there is one, so callers can point at its
    field in the stack config.
    """

    def __init__(self, message: str, sector: str | None = None) -> None:
        self.sector = sector
        super().__init__(message)


class BackplaneImmutableError(OrbitLabError):
    """The cluster's Backplane already exists with another CIDR."""
