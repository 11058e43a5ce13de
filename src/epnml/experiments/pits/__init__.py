"""Training and evaluation runs of the pits model (see ml/MODEL_CARD_pits.md)."""
