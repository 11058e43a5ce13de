"""IVOA UWS 1.1 jobs: the store (:mod:`.store`), the worker (:mod:`.worker`) and the
XML documents (:mod:`.documents`); the HTTP routes are :mod:`epnml.api.routes.uws`."""
