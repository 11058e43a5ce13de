"""Ice patches in HiRISE-like images: the chunk CNN and image-level rule (:mod:`.icenet`),
committed weights and inference (:mod:`.model`)."""
