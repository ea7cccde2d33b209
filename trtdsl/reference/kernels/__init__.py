"""The convolution kernels of the reference interpreter's fast mode, and the im2col they share.

``reference.conv.conv_nd`` picks one per convolution: ``im2col`` (the general
path, also the plain mode's), ``phases`` (strided kernels with many offsets per
stride phase), ``winograd`` (3x3 stride-1 "same"), ``depthwise`` (one filter per
channel). Each fast kernel is tested against the plain path and against torch
(tests/reference/test_convolution.py).
"""
