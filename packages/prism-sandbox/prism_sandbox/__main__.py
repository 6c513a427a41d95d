"""``python -m prism_sandbox``: same as the ``prism-sandbox`` command."""

import sys

from prism_sandbox.cli import main

sys.exit(main())
