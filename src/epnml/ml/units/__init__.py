"""Spectral units of Mercury (MASCS): gridding, ICA + UMAP + clustering, unit regions."""
