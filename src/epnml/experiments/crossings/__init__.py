"""Training and evaluation runs of the crossings model (see ml/MODEL_CARD_crossings.md)."""
