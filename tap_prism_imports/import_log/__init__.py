"""The import log, on the tap's side: which files, where reading resumes, what each line
becomes, and the keys of the rows of jobs it handed over.

The format and the writer are the ``prism-import-log`` distribution (standard library
only, for the applications that write the log); ``ImportLog`` stays importable from
here for code written against earlier releases.
"""

from prism_import_log import ImportLog

__all__ = ["ImportLog"]
