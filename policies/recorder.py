"""What the pack receives, recorded for the conformance tests: set ROADBIKE_POLICY_RECORD to a directory
and each process of the pack appends, to `<pid>.jsonl` there, one JSON line per resource of every
`Analyze` and `AnalyzeStack` request (the call, type, URN and properties exactly as they arrived, but
that a secret's value is written as its SHA-256: equal values still compare equal, none is in clear).

Read by the pack's entry point only; unset (always, outside the tests), it changes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from google.protobuf import json_format

RECORD_VARIABLE = "ROADBIKE_POLICY_RECORD"
SECRET_SIG_KEY, SECRET_SIG = "4dabf18193072939515e22adb298388d", "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"


def _hidden(value: Any) -> Any:
    """The value with each secret's content replaced by its digest (an unknown secret stays unknown)."""
    if isinstance(value, dict):
        if value.get(SECRET_SIG_KEY) == SECRET_SIG and value.get("value") != UNKNOWN:
            text = json.dumps(value.get("value"), sort_keys=True)
            return {**value, "value": "sha256:" + hashlib.sha256(text.encode()).hexdigest()}
        return {key: _hidden(inner) for key, inner in value.items()}
    if isinstance(value, list):
        return [_hidden(inner) for inner in value]
    return value


class _Recorder:
    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"{os.getpid()}.jsonl"
        self.lock = threading.Lock()

    def write(self, call: str, resource: Any) -> None:
        line = {
            "call": call,
            "type": resource.type,
            "urn": resource.urn,
            "properties": _hidden(json_format.MessageToDict(resource.properties)),
        }
        text = json.dumps(line, sort_keys=True) + "\n"
        with self.lock, self.path.open("a", encoding="utf-8") as file:
            file.write(text)


def install() -> None:
    """Wrap the analyzer servicer the pack registers, when ROADBIKE_POLICY_RECORD is set."""
    directory = os.environ.get(RECORD_VARIABLE)
    if not directory:
        return
    from pulumi.runtime.proto import analyzer_pb2_grpc

    recorder = _Recorder(Path(directory))
    register = analyzer_pb2_grpc.add_AnalyzerServicer_to_server

    def recording_register(servicer: Any, server: Any) -> None:
        analyze, analyze_stack = servicer.Analyze, servicer.AnalyzeStack

        def recorded_analyze(request: Any, context: Any) -> Any:
            recorder.write("Analyze", request)
            return analyze(request, context)

        def recorded_analyze_stack(request: Any, context: Any) -> Any:
            for resource in request.resources:
                recorder.write("AnalyzeStack", resource)
            return analyze_stack(request, context)

        servicer.Analyze, servicer.AnalyzeStack = recorded_analyze, recorded_analyze_stack
        register(servicer, server)

    analyzer_pb2_grpc.add_AnalyzerServicer_to_server = recording_register
