"""Record Prism bulk-import requests in the import log that tap-prism-imports loads.

Standard library only, so application code that makes imports can install it alone::

    from prism_import_log import ImportLog

    log = ImportLog("/var/log/prism/imports.jsonl")
    log.record(response, team_id=team_id, object_type="contact", input_keys=keys)
"""

from prism_import_log.format import FORMAT_VERSION, LogLine, LogLineError
from prism_import_log.writer import ImportLog

__version__ = "1.0.0"

__all__ = ["FORMAT_VERSION", "ImportLog", "LogLine", "LogLineError", "__version__"]
