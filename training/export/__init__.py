"""Exporters: a run directory's traces and label files in, TRL-format datasets with cards out.

- ``sources``      reads a run directory (traces, label files, meta) into ``RunData``.
- ``formats``      stepwise PRM, sibling pairs and value rows; the prompt rendering.
- ``sft``          correct end-leaf solutions.
- ``refine_pairs`` MCTSr self-refine preference pairs.
- ``proofs``       proof-search SFT rows and pairs.
- ``card``         the dataset card (README.md) written beside each dataset.
- ``exporter``     ``export_run``: builds, saves and swaps in one dataset per format.
"""

from training.export.exporter import FORMATS, ExportConfig, build_rows, export_run

__all__ = ["FORMATS", "ExportConfig", "build_rows", "export_run"]
