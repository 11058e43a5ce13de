"""Pits and skylights on Mars (DeepLandforms classes): the committed detector weights and
tiled inference (:mod:`.inference`); the network is :mod:`epnml.ml.imagery.detector`."""
