"""The low-visibility ankle check looks at the dilated mask at one pixel without dilating the image."""

from __future__ import annotations

import cv2
import numpy as np

from services.render.character.joints import _near_mask


def test_near_mask_matches_whole_image_dilation_with_random_masks() -> None:
    rng = np.random.default_rng(4)
    for r in (1, 4, 9):
        mask = np.where(rng.random((40, 50)) < 0.01, 255, 0).astype(np.uint8)
        mask[0, 49] = 255  # a pixel in a corner: the kernel is clipped there
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
        dilated = cv2.dilate(mask, kernel) > 0
        near = np.array([[_near_mask(mask, kernel > 0, x, y) for x in range(50)] for y in range(40)])
        assert np.array_equal(near, dilated)
        assert near.any() and not near.all()
