"""Errors raised by grokscope.

Every error carries a single line that names what is wrong and what to fix, so a user
sees the cause without a traceback (the command line prints only the message).
"""

from __future__ import annotations


class GrokscopeError(Exception):
    """Base class of every error grokscope raises on purpose."""


class ConfigError(GrokscopeError, ValueError):
    """A configuration value is missing, of the wrong type or outside its allowed range."""


class DatasetFormatError(GrokscopeError, ValueError):
    """A dataset file is malformed; the message names the path and, where known, the line."""


class CheckpointError(GrokscopeError, ValueError):
    """A checkpoint is missing, truncated, corrupted or does not match the requested model."""
