"""Throughput of the landform models (pits, craters, mounds, ice): `epnml bench landforms`."""
