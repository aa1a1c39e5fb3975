"""What the networks see: multi-crop views and augmentations, batched on the training device.

May import: :mod:`backbones` (the crops' nearest-neighbour search).
"""
