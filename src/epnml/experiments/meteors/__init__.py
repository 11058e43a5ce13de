"""Training run of the meteors light-curve classifier (see ml/MODEL_CARD_meteors.md)."""
