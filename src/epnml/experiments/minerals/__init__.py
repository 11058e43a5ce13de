"""Training and evaluation runs of the minerals model (see ml/MODEL_CARD_minerals.md)."""
