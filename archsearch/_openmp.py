"""Idle OpenMP threads sleep instead of spinning: ``OMP_WAIT_POLICY=PASSIVE`` unless already set.

torch's CPU operators run on an OpenMP pool (GNU libgomp in the pip wheels; MKL and oneDNN share
it). By default an idle pool thread spins for a while before it sleeps, burning a core that another
process, or another thread of this one, could use; beside a busy process the spinning threads and
the one that waits for its share of a core slow a training step many times over (issue 18). The
OpenMP runtime reads the policy once, when torch loads it, so this module runs before anything
imports torch: ``archsearch/__init__.py`` imports it first. Set ``OMP_WAIT_POLICY`` yourself (e.g.
``ACTIVE``) to override it, and import archsearch before torch for it to take effect.
"""

from __future__ import annotations

import os

__all__ = ["WAIT_POLICY"]

WAIT_POLICY = os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
"""The policy in effect for OpenMP runtimes loaded after this import."""
