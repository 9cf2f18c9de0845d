"""Errors of training/ (see common/errors.py for the raise-vs-result rule)."""

from __future__ import annotations

from depth_annotation.common import DepthAnnotationError


class TrainingDataError(DepthAnnotationError, ValueError):
    """The dataset lacks what a training output needs (annotations, frames, a working range with points),
    or a setting is out of range; the message names the file, episode or setting."""


class StaleTrainingFileError(DepthAnnotationError, RuntimeError):
    """export/training.h5 was made from other annotations than the dataset has now: rerun `pointclouds`."""
