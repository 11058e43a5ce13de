"""Spectral units of Mercury (MASCS) and mineral abundances (RELAB)."""
