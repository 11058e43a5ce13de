"""Mapped landforms of Mars: the pits-and-skylights detector (DeepLandforms classes).

``detector`` holds the network and its box decoding, ``tiling`` the large-image
handling, ``inference`` the checksum-verified committed weights, ``train_pits`` and
``evaluate_pits`` the reproducible training and the mAP figures of the model card.
Mounds and ice patches: ``unet`` (mound U-Net and its DTM-derived inputs), ``icenet``
(ice chunk CNN and the image-level rule), ``segmodels`` (their checksum-verified weights
and inference), ``train_mounds`` / ``evaluate_mounds``, ``train_ice`` / ``evaluate_ice``.
"""
