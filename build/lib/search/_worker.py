"""``python -m search._worker``: one search worker process, its job as JSON on stdin.

Started by :func:`search.workers.run_workers`; a module of its own so that ``-m`` never runs a
module the package has imported already.
"""

from __future__ import annotations

from .workers import worker_process_main

if __name__ == "__main__":
    worker_process_main()
