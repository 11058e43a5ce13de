"""Impact craters on the Moon and Mars: the committed crater detector (the pits network,
:mod:`epnml.ml.imagery.detector`, trained on crater boxes) and its inference."""
