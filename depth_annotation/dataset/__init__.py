"""From recordings to an annotation-ready dataset: rosbag2 I/O, stamp synchronisation, the
crash-safe HDF5 writer and its chunk codecs, the exporter, dataset info and checks, annotation
PNGs and Label Studio files, and the one-frame view.
"""

from typing import TYPE_CHECKING

from depth_annotation.common import lazy_exports

if TYPE_CHECKING:
    from .bag_io import BagReader, TopicInfo, open_bag, recorded_qos, stamp_of
    from .bag_recovery import RecoveryReport
    from .bag_reindex import ReindexResult, reindex
    from .bag_writer import DISTROS, BagWriter
    from .check import FULL_DECODE_FRAMES, CheckReport, check_dataset, check_report
    from .chunk_codecs import CODECS, open_h5, resolve_codec
    from .errors import (
        BagError,
        BagInputError,
        BagMetadataError,
        BagPermissionError,
        BagShortReadError,
        BagTruncatedError,
        CodecError,
        ExportError,
        ExportInputError,
        ExportLockedError,
        ExportOptionError,
        ExportOutputError,
        NotABagError,
        NotABagFileError,
        UnknownStorageError,
    )
    from .exporter import DEFAULT_TOPICS, LOCK_NAME, ExportOptions, ExportSession, export_bags
    from .hdf5_writer import EpisodeMeta, Hdf5DatasetWriter, file_checksum, frame_checksum
    from .info import assign_splits
    from .synthetic_bag import write_synthetic_bag
    from .visualize import render_h5_frame

__getattr__, __dir__, __all__ = lazy_exports(__name__, __file__)
