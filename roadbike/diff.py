"""The change a plan makes against a base, step by step, as `pulumi preview` computes it.

Resources are matched by URN. A resource only in the plan is a create, only in the base a delete; one in
both is the same, an update, or a replace when a changed property forces a replacement by its provider's
rules (`REPLACE_RULES`). Both sides are in plan.json form, secrets already `[secret]`, so a secret's
change cannot be seen and nothing here ever holds one in clear.
"""

from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from components.protection import why_kept

STACK_TYPE = "pulumi:pulumi:Stack"
OPS = ("create", "update", "replace", "delete", "same")
SYMBOLS = {"create": "+", "update": "~", "replace": "+-", "delete": "-", "same": ""}
ALL_PROPERTIES = "*"
# Properties (engine names) whose change makes the provider replace the resource instead of updating it:
# pulumi-kubernetes' forceNew table (provider/pkg/provider/diff.go), the ForceNew fields of the
# terraform-provider-github resources the platform uses (a different `repository` is another
# repository's object), every input of the random resources, and the cosign key pair's own diff.
KUBERNETES_REPLACE = ("metadata.name", "metadata.namespace")
KIND_REPLACE: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec.selector",),
    "kubernetes:core/v1:PersistentVolumeClaim": ("spec",),
    "kubernetes:core/v1:Secret": ("type", "stringData", "data"),
    "kubernetes:core/v1:Service": ("spec.clusterIP",),
    "kubernetes:core/v1:ConfigMap": ("data", "binaryData"),
    "kubernetes:rbac.authorization.k8s.io/v1:RoleBinding": ("roleRef",),
    "kubernetes:rbac.authorization.k8s.io/v1:ClusterRoleBinding": ("roleRef",),
}
REPLACE_RULES: dict[str, tuple[str, ...]] = {
    "github:index/repositoryFile:RepositoryFile": ("repository", "file", "branch"),
    "github:index/actionsEnvironmentSecret:ActionsEnvironmentSecret": (
        "repository",
        "environment",
        "secretName",
    ),
    "github:index/actionsEnvironmentVariable:ActionsEnvironmentVariable": (
        "repository",
        "environment",
        "variableName",
    ),
    "github:index/repositoryEnvironment:RepositoryEnvironment": ("repository", "environment"),
    "github:index/repositoryEnvironmentDeploymentPolicy:RepositoryEnvironmentDeploymentPolicy": (
        "repository",
        "environment",
    ),
    "github:index/repositoryWebhook:RepositoryWebhook": ("repository",),
    "random:index/randomPassword:RandomPassword": (ALL_PROPERTIES,),
    "random:index/randomString:RandomString": (ALL_PROPERTIES,),
    "random:index/randomId:RandomId": (ALL_PROPERTIES,),
    "pulumi-python:dynamic/roadbike:CosignKeyPair": ("password", "service"),
}
_PLAIN_KEY = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")


@dataclass(frozen=True)
class PropertyChange:
    path: str  # Pulumi's property path: spec.groups[0].rules[1].expr, metadata.labels["app"]
    kind: str  # add | delete | update
    old: Any = None
    new: Any = None


@dataclass
class Step:
    op: str
    urn: str
    type: str
    name: str
    parent: str
    old: dict[str, Any] | None = None  # the resource in the base, plan.json form
    new: dict[str, Any] | None = None  # the resource in this plan
    changes: list[PropertyChange] = field(default_factory=list)
    replace_reasons: list[str] = field(default_factory=list)

    @property
    def protected(self) -> bool:
        """Protected in the base or in the plan (a base from an older roadbike may not record it)."""
        return any(r is not None and r.get("protect") is True for r in (self.old, self.new))

    @property
    def diff_reasons(self) -> list[str]:
        """The top-level properties that differ, as Pulumi's `[diff: ~spec]` names them."""
        return sorted({top_level(change.path) for change in self.changes})


@dataclass
class ChangeSet:
    steps: list[Step]
    output_changes: list[PropertyChange] = field(default_factory=list)
    base_label: str = ""  # empty: no base, everything is created

    def counts(self) -> dict[str, int]:
        found = Counter(step.op for step in self.steps)
        return {op: found[op] for op in OPS if found[op]}

    def changed(self) -> list[Step]:
        return [step for step in self.steps if step.op != "same"]

    def refused(self) -> list[Step]:
        """The steps `pulumi up` refuses: a protected resource deleted or replaced."""
        return [step for step in self.steps if step.op in ("delete", "replace") and step.protected]


def refusal(step: Step) -> str:
    """Why a refused step is refused, what it would lose, and how to take it on purpose."""
    kept = why_kept(step.type)
    stack = step.urn.split("::", 1)[0].removeprefix("urn:pulumi:")
    verb = "deleting" if step.op == "delete" else "replacing"
    return (
        f"{verb} {step.name} would lose {kept.loses}; it is protected, so `pulumi up` refuses it too. "
        f"To do it on purpose: {kept.on_purpose}, then `pulumi state unprotect --stack {stack} "
        f"'{step.urn}'` and `pulumi up`"
    )


def top_level(path: str) -> str:
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def _key_path(prefix: str, key: str) -> str:
    if _PLAIN_KEY.match(key):
        return f"{prefix}.{key}" if prefix else key
    quoted = key.replace("\\", "\\\\").replace('"', '\\"')
    return f'{prefix}["{quoted}"]'


def property_changes(old: Any, new: Any, path: str = "") -> list[PropertyChange]:
    """Every leaf where two values differ, objects by key and arrays by index, in key order."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[PropertyChange] = []
        for key in sorted(set(old) | set(new)):
            child = _key_path(path, str(key))
            if key not in old:
                found.append(PropertyChange(child, "add", None, new[key]))
            elif key not in new:
                found.append(PropertyChange(child, "delete", old[key], None))
            else:
                found += property_changes(old[key], new[key], child)
        return found
    if isinstance(old, list) and isinstance(new, list):
        found = []
        for index in range(max(len(old), len(new))):
            child = f"{path}[{index}]"
            if index >= len(old):
                found.append(PropertyChange(child, "add", None, new[index]))
            elif index >= len(new):
                found.append(PropertyChange(child, "delete", old[index], None))
            else:
                found += property_changes(old[index], new[index], child)
        return found
    if old == new and type(old) is type(new):
        return []
    return [PropertyChange(path, "update", old, new)]


def replace_rules(resource_type: str) -> tuple[str, ...]:
    if resource_type.startswith("kubernetes:"):
        return KUBERNETES_REPLACE + KIND_REPLACE.get(resource_type, ())
    return REPLACE_RULES.get(resource_type, ())


def _forces_replacement(path: str, rules: tuple[str, ...]) -> bool:
    return any(
        rule == ALL_PROPERTIES or path == rule or path.startswith((rule + ".", rule + "[")) for rule in rules
    )


def _compared_inputs(resource: dict[str, Any]) -> dict[str, Any]:
    # `__provider` (a dynamic provider's code) and the bridge's `__defaults` are the engine's, not a change.
    return {k: v for k, v in (resource.get("inputs") or {}).items() if not k.startswith("__")}


def _compare(urn: str, old: dict[str, Any], new: dict[str, Any]) -> Step:
    changes = property_changes(_compared_inputs(old), _compared_inputs(new))
    rules = replace_rules(new["type"])
    replacing = sorted({top_level(c.path) for c in changes if _forces_replacement(c.path, rules)})
    op = "replace" if replacing else ("update" if changes else "same")
    return Step(op, urn, new["type"], new["name"], new.get("parent", ""), old, new, changes, replacing)


def change_set(
    base: list[dict[str, Any]] | None,
    head: list[dict[str, Any]],
    stack_urn: str,
    base_outputs: dict[str, Any] | None = None,
    head_outputs: dict[str, Any] | None = None,
    base_label: str = "",
) -> ChangeSet:
    """The steps from `base` to `head` (plan.json resources); no base: every resource is created.

    The stack itself comes first, created when there is no base; every other step in URN order.
    """
    head_by_urn = {r["urn"]: r for r in head}
    base_by_urn = {r["urn"]: r for r in (base or [])}
    stack_name = stack_urn.rsplit("::", 1)[-1]
    steps = [Step("same" if base is not None else "create", stack_urn, STACK_TYPE, stack_name, "")]
    for urn in sorted(set(head_by_urn) | set(base_by_urn)):
        new, old = head_by_urn.get(urn), base_by_urn.get(urn)
        if base is None or old is None:
            assert new is not None
            steps.append(Step("create", urn, new["type"], new["name"], new.get("parent", ""), None, new))
        elif new is None:
            steps.append(Step("delete", urn, old["type"], old["name"], old.get("parent", ""), old, None))
        else:
            steps.append(_compare(urn, old, new))
    outputs = property_changes(base_outputs or {}, head_outputs or {}) if base is not None else []
    return ChangeSet(steps, outputs, base_label)


def artifact_diffs(base: dict[str, str], head: dict[str, str]) -> dict[str, str]:
    """Unified diffs of the artifact files that differ, by path (added and removed files too)."""
    diffs = {}
    for path in sorted(set(base) | set(head)):
        old, new = base.get(path), head.get(path)
        if old == new:
            continue
        lines = difflib.unified_diff(
            (old or "").splitlines(keepends=True),
            (new or "").splitlines(keepends=True),
            fromfile=f"a/{path}" if old is not None else "/dev/null",
            tofile=f"b/{path}" if new is not None else "/dev/null",
        )
        diffs[path] = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return diffs
