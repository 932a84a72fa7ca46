"""The roadbike Pulumi program: typed config -> DeliveryPlatform -> stack outputs."""

import pulumi

from components.config import ConfigError, load_pulumi_config
from components.platform import DeliveryPlatform

try:
    config = load_pulumi_config()
except ConfigError as error:
    raise pulumi.RunError("invalid stack config:\n" + "\n".join(error.problems)) from None

platform = DeliveryPlatform("roadbike", config)

for key, value in platform.outputs.items():
    pulumi.export(key, value)
