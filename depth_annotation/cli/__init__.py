"""`depth-annotation`: the offline commands (export, record/play, mono, check, view, synth, demo)
over the same cores the nodes run."""

from .main import main

__all__ = ["main"]
