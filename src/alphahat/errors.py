"""Exceptions with one message shape: what was being read (file, tensor or layer) and why."""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` on one line with control characters escaped (names in files are untrusted).

    An ESC byte becomes the four characters backslash, x, 1, b: a file or tensor name can hold
    ESC or BEL bytes that a terminal would obey; every message, title and summary line prints
    names through this.
    """
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class AlphahatError(Exception):
    """Base class of every error this package raises on purpose."""


class SourceError(AlphahatError):
    """A model, file or folder could not be read; the message names it."""


class MissingDependencyError(AlphahatError, ImportError):
    """An optional dependency (an extra) is needed for this input and is not installed."""


class LayerError(AlphahatError):
    """One layer could not be analysed; the message says why (its row becomes ``failed``)."""


class OptionError(AlphahatError, ValueError):
    """An option has a value it cannot take; one message shape for every option.

    ``str(error)`` is ``"{option} must be {requirement}; got {value!r}"``; :meth:`named`
    gives the same sentence with another name for the option (the command line's flag).
    Errors about a combination of options have no single ``requirement`` and keep their text.
    """

    def __init__(
        self,
        option: str,
        requirement: str = "",
        value: object = None,
        *,
        optional: bool = False,
        message: str = "",
    ) -> None:
        self.option = option
        self.requirement = requirement
        self.value = value
        self.optional = optional
        either = "None or " if optional else ""
        super().__init__(message or f"{option} must be {either}{requirement}; got {value!r}")

    def named(self, name: str) -> str:
        """The message with the option called ``name`` (e.g. ``--min-evals``).

        (A flag is never None, so the "None or" of an optional option is left out.)
        """
        if not self.requirement:
            return str(self)
        return f"{name} must be {self.requirement}; got {self.value!r}"
