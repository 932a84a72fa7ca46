"""Entry point the Pulumi engine runs for `--policy-pack policies`: builds the pack and serves it."""

import gc
import sys
from pathlib import Path

# The engine runs this file with the pack directory on sys.path; the policy modules live in the
# `policies` package, so its parent must be importable too.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pulumi_policy import EnforcementLevel, PolicyPack

from policies import shared_props
from policies.catalog import PACK_NAME, POLICIES
from policies.recorder import install as install_recorder

if __name__ == "__main__":
    install_recorder()
    shared_props.install()
    # A pack process serves one preview and ends with it. Cyclic garbage collection made a third of its
    # time for a large stack (AnalyzeStack builds a policy view of every resource): reference counting
    # frees what a call leaves, and the import-time objects are never scanned again.
    gc.freeze()
    gc.disable()
    PolicyPack(
        name=PACK_NAME,
        policies=POLICIES,
        enforcement_level=EnforcementLevel.MANDATORY,
        description="roadbike security gate for the delivery chain of Go services",
    )
