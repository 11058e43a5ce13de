"""Training and evaluation runs of the ice model (see ml/MODEL_CARD_ice.md)."""
