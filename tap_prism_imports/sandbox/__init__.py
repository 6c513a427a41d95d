"""An offline sandbox implementing the Prism Imports API, for tests, demos and benchmarks.

Example::

    from tap_prism_imports.sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox, seed_demo

    with Sandbox(rate_limit=None) as sandbox:
        job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1_000)
        refs = seed_demo(sandbox)  # the demo jobs, as ``TEAM_ID/JOB_ID``
        # GET {sandbox.base_url}/v2/prism/{DEMO_TEAM_ID}/imports/{job_id}
        # with header x-api-key: DEMO_API_KEY
"""

from tap_prism_imports.sandbox.defaults import DEMO_API_KEY, DEMO_TEAM_ID
from tap_prism_imports.sandbox.faults import FAULT_KINDS, Fault
from tap_prism_imports.sandbox.jobs import RETENTION_SECONDS
from tap_prism_imports.sandbox.records import OBJECT_TYPES, REQUIRED_PROPERTIES
from tap_prism_imports.sandbox.response import ApiResponse
from tap_prism_imports.sandbox.seed import seed_demo, write_refs_file
from tap_prism_imports.sandbox.server import Sandbox

__all__ = [
    "DEMO_API_KEY",
    "DEMO_TEAM_ID",
    "FAULT_KINDS",
    "OBJECT_TYPES",
    "REQUIRED_PROPERTIES",
    "RETENTION_SECONDS",
    "ApiResponse",
    "Fault",
    "Sandbox",
    "seed_demo",
    "write_refs_file",
]
