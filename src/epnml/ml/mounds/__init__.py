"""Mounds on Mars DTMs: the U-Net and its DTM-derived inputs (:mod:`.unet`), committed
weights and tiled inference (:mod:`.model`)."""
