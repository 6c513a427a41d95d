"""``python -m tap_prism_imports.sandbox``: same as the ``prism-sandbox`` command."""

import sys

from tap_prism_imports.sandbox.cli import main

sys.exit(main())
