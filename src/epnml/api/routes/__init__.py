"""The HTTP routes, one router per standard; :func:`epnml.api.app.create_app` includes them
in this order: service, models, datalink, inference, uws."""
