"""Mineral abundances of reflectance spectra (RELAB-trained unmixing network)."""
