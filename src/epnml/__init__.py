"""epnml: EPN-TAP 2.0 catalogues written by machine-learning ingest stages.

Public API (small and explicit):

- :func:`epnml.config.load_settings` -- the one configuration object;
- :data:`epnml.ingest.registry.PIPELINES` -- the registry of ingest pipelines;
- :func:`epnml.ingest.runner.run_pipeline` -- run a pipeline over files (predict or ingest).
"""

__version__ = "0.1.0"
