"""Mapped landforms of Mars: the pits-and-skylights detector (DeepLandforms classes).

``detector`` holds the network and its box decoding, ``tiling`` the large-image
handling, ``inference`` the checksum-verified committed weights, ``train_pits`` and
``evaluate_pits`` the reproducible training and the mAP figures of the model card.
"""
