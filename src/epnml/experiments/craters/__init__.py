"""Training and evaluation runs of the craters model (see ml/MODEL_CARD_craters.md)."""
