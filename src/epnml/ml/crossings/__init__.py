"""Boundary crossings at Mercury (MESSENGER MAG): region segmentation + crossing extraction."""
