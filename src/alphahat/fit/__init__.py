"""Fit: power-law fits of a sample's tail (pure numpy/scipy, no I/O, no framework types)."""

from alphahat.fit.power_law import CONVENTIONS, FitStatus, PowerLawFit, fit_power_law

__all__ = ["CONVENTIONS", "FitStatus", "PowerLawFit", "fit_power_law"]
