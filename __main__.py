"""The roadbike Pulumi program: typed config -> DeliveryPlatform -> stack outputs."""

import os

import pulumi
from pulumi.runtime import mocks, settings

from components.config import ConfigError, load_pulumi_config
from components.kubernetes.cluster import cluster_problem
from components.platform import DeliveryPlatform

try:
    config = load_pulumi_config()
except ConfigError as error:
    raise pulumi.RunError("invalid stack config:\n" + "\n".join(error.problems)) from None

# With the real engine, the stack's kubeconfig context must exist before anything is touched; `roadbike
# plan` (the mock monitor) runs offline and never reads a kubeconfig.
if not isinstance(settings.SETTINGS.monitor, mocks.MockMonitor):
    problem = cluster_problem(
        config, os.environ, f"stacks/Pulumi.{pulumi.get_stack()}.yaml", preview=pulumi.runtime.is_dry_run()
    )
    if problem:
        raise pulumi.RunError("invalid stack config:\n" + problem)

platform = DeliveryPlatform("roadbike", config)

for key, value in platform.outputs.items():
    pulumi.export(key, value)
