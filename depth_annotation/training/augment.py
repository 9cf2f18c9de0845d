"""The guide's depth augmentations, reproducible by seed: Gaussian noise, dropout patches, scale jitter.

Every sample draws from its own generator, seeded by (seed, epoch, sample index):
the same sample gets the same augmentation whichever worker loads it, so a
DataLoader with workers yields what one without does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import TrainingDataError


@dataclass(frozen=True)
class AugmentConfig:
    """Augmentations; the defaults are the guide's (sigma = 2 mm, dropout of random patches)."""

    noise_sigma_m: float = 0.002  # Gaussian depth noise added to valid pixels and to point clouds
    dropout_fraction: float = 0.05  # image area covered by dropout patches (depth 0, as a sensor failure)
    patch_min_px: int = 8  # patch side lengths, uniform in [min, max]
    patch_max_px: int = 48
    scale_jitter: float = 0.0  # depth (and points) scaled by U(1 - j, 1 + j); 0: off

    def validate(self) -> None:
        if self.noise_sigma_m < 0:
            raise TrainingDataError(f"noise_sigma_m must not be negative, got {self.noise_sigma_m}")
        if not 0 <= self.dropout_fraction < 1:
            raise TrainingDataError(f"dropout_fraction must be in [0, 1), got {self.dropout_fraction}")
        if not 1 <= self.patch_min_px <= self.patch_max_px:
            raise TrainingDataError(
                f"need 1 <= patch_min_px ({self.patch_min_px}) <= patch_max_px ({self.patch_max_px})"
            )
        if not 0 <= self.scale_jitter < 1:
            raise TrainingDataError(f"scale_jitter must be in [0, 1), got {self.scale_jitter}")


def sample_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, epoch, index])


def dropout_mask(shape: tuple[int, int], config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """Random rectangles until they cover at least `dropout_fraction` of the image.

    The union overshoots by less than one patch: coverage is in
    [fraction, fraction + patch_max_px^2 / (H W)).
    """
    h, w = shape
    mask = np.zeros(shape, bool)
    target = config.dropout_fraction * h * w
    covered = 0
    while covered < target:
        ph = int(rng.integers(config.patch_min_px, config.patch_max_px + 1))
        pw = int(rng.integers(config.patch_min_px, config.patch_max_px + 1))
        y = int(rng.integers(0, max(1, h - ph + 1)))
        x = int(rng.integers(0, max(1, w - pw + 1)))
        window = mask[y : y + ph, x : x + pw]
        covered += int(window.size - np.count_nonzero(window))
        window[...] = True
    return mask
