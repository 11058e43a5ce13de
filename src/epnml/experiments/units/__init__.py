"""Evaluation and speed of the units pipeline (see ml/MODEL_CARD_units.md)."""
