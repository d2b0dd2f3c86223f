"""`ponder view`: a run directory (or a folder of them) as one self-contained HTML file.

``data.py`` reads run dirs into the view's data (no browser); ``page.py`` writes the page
(CSS and JavaScript from ``assets/``, inlined; no network at view time); ``browser.py``
drives the system Chromium for tests and ``ponder bench view``.
"""

from ponder.view.data import ViewError, read_view
from ponder.view.page import write_view

__all__ = ["ViewError", "read_view", "write_view"]
