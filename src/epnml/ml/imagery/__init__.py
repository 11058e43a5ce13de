"""Image-model code shared by the landform cases (pits, craters, mounds, ice).

``detector`` is the box detector network and its decoding (the pits model; the craters
model is the same network trained on crater boxes), ``tiling`` the large-image handling
(tiles, overlaps, NMS). Each case keeps its own package: :mod:`epnml.ml.pits`,
:mod:`epnml.ml.craters`, :mod:`epnml.ml.mounds`, :mod:`epnml.ml.ice`.
"""
