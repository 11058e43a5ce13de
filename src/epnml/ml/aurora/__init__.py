"""Martian aurora in FUV disk images: disk geometry, the cheap prefilter and the detector."""

#: the auroral types of EMUS (Lillis et al. 2022): the detector's classes, in order.
AURORA_TYPES = ("discrete", "diffuse", "sinuous")
