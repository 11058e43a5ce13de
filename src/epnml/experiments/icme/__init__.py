"""Training and evaluation runs of the icme model (see ml/MODEL_CARD_icme.md)."""
