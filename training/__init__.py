"""Training data from search runs: traces and label files in, TRL-compatible datasets out.

Training reads only files (a run directory), never live search objects::

    from training import export_run
    export_run("runs/label-gsm8k", formats=("prm", "sft"), generator="math_shepherd")

``training`` may import ``search``, ``models`` and ``verifiers``; it never imports ``ponder``
(``ponder`` wires training, not the reverse). ``datasets`` is imported only when a dataset
is built.
"""

from training.export import FORMATS, ExportConfig, export_run
from training.export.formats import Rows, render_prompt
from training.export.sources import RunData, RunDataError, read_run

__all__ = ["FORMATS", "ExportConfig", "Rows", "RunData", "RunDataError", "export_run",
           "read_run", "render_prompt"]
