"""One typed way to mark a value secret, so that plans, state and logs never show it in clear."""

from __future__ import annotations

import pulumi


def secret(value: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.secret(value)
