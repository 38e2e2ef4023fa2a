"""Errors shown to users: one specific message, no traceback."""

from __future__ import annotations


class ZooError(Exception):
    """An error with a message meant for the user (what, where, how to fix)."""

    exit_code = 1


class ConfigError(ZooError):
    """A registry, override or command-line value is invalid."""


class PluginError(ZooError):
    """A plugin failed to load, raised inside a hook, or clashed with another."""


class DataError(ZooError):
    """A dataset source or cache cannot be read."""
