"""Training and evaluation runs of the mounds model (see ml/MODEL_CARD_mounds.md)."""
