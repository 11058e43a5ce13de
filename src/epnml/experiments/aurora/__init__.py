"""Training, evaluation and benchmark of the aurora detector (see ml/MODEL_CARD_aurora.md)."""
