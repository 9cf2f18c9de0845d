"""Beyond one machine: export, monocular depth and validation over many bags as Ray tasks.

One Ray task per bag (export, validation) and a pool of Ray actors holding the mono model,
over the single-machine cores of `dataset/`, `mono/` and `annotation/` unchanged. One dataset
per bag (`OUT/<bag-stem>/`), a done-marker per bag (`OUT/.batch/<stem>.<mode>.json`) so a rerun
skips finished bags and redoes partial ones. Ray is imported only when a batch runs.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .errors import BatchError, RayUnavailable
    from .jobs import MARKER_DIR, BagResult, ExportJob, MonoJob, ValidateJob, bag_fingerprint, run_export, run_validate
    from .runner import BatchOptions, BatchSummary, find_bags, run_batch

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
