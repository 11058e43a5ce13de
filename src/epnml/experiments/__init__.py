"""Training, evaluation and benchmark runs behind the model cards, one package per case.

They read data (the readers and simulators of :mod:`epnml.ingest`) and drive the model code
of :mod:`epnml.ml`, so they sit above both: ``epnml.ml`` never imports ``epnml.ingest``.
Run as ``python -m epnml.experiments.<case>.train`` / ``.evaluate`` / ``.bench``.
"""
