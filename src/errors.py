"""Errors whose message alone tells a user what went wrong and what to do.

Entry points print them as one line and exit with status 1 instead of a traceback.
"""

from __future__ import annotations

from numbers import Integral


class UserFacingError(Exception):
    """Bad input or environment (paths, data, options), not a bug in the project."""


class ConfigError(UserFacingError, ValueError):
    """A config value the project cannot use."""


class StoppedBySignal(UserFacingError):
    """The run was asked to stop (SIGTERM) and saved its state; the message says how to resume."""


def check_choice(key: str, value: str, choices: tuple[str, ...] | list[str]) -> str:
    """``value`` if it is one of ``choices``; else a ConfigError naming the config key."""
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {', '.join(choices)}.")
    return value


def check_whole_number(key: str, value: object, minimum: int) -> int:
    """``value`` if it is a whole number of at least ``minimum``; else a ConfigError."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < minimum:
        raise ConfigError(f"{key}={value!r} is not allowed: use a whole number >= {minimum}.")
    return int(value)
