"""Exceptions with one message shape: what was being read (file, tensor or layer) and why."""

from __future__ import annotations


class AlphahatError(Exception):
    """Base class of every error this package raises on purpose."""


class SourceError(AlphahatError):
    """A model, file or folder could not be read; the message names it."""


class MissingDependencyError(AlphahatError, ImportError):
    """An optional dependency (an extra) is needed for this input and is not installed."""


class LayerError(AlphahatError):
    """One layer could not be analysed; the message says why (its row becomes ``failed``)."""
