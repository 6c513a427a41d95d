"""An offline sandbox implementing the Prism Imports API, for tests, demos and benchmarks.

Example::

    from prism_sandbox import DEMO_API_KEY, DEMO_TEAM_ID, Sandbox, seed_demo

    with Sandbox(rate_limit=None) as sandbox:
        job_id = sandbox.add_job(DEMO_TEAM_ID, rows=1_000)
        refs = seed_demo(sandbox)  # the demo jobs, as ``TEAM_ID/JOB_ID``
        # GET {sandbox.base_url}/v2/prism/{DEMO_TEAM_ID}/imports/{job_id}
        # with header x-api-key: DEMO_API_KEY
"""

from prism_sandbox.defaults import DEMO_API_KEY, DEMO_TEAM_ID
from prism_sandbox.faults import FAULT_KINDS, Fault
from prism_sandbox.jobs import RETENTION_SECONDS
from prism_sandbox.records import OBJECT_TYPES, REQUIRED_PROPERTIES
from prism_sandbox.response import ApiResponse
from prism_sandbox.seed import seed_demo, write_refs_file
from prism_sandbox.server import Sandbox

__version__ = "0.1.0"

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
