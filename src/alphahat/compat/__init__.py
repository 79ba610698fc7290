"""Drop-in replacement for the reference tool's API: ``from alphahat.compat import WeightWatcher``.

A notebook written for ``weightwatcher`` 0.7.7 runs by changing its import: the same class,
methods, option names and column names, computed by alphahat. Where the numbers differ on
purpose (failed fits are NaN, not −1; exact entropy; a proper MP fit for square matrices; …)
docs/coming-from-weightwatcher.md says so, column by column.
"""

from alphahat.compat.weightwatcher import WeightWatcher

__all__ = ["WeightWatcher"]
