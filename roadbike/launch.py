"""The `roadbike` command's entry point: takes over SIGINT and SIGTERM before anything heavy is imported.

Importing the command (the Pulumi SDK, gRPC, the components) takes a few tenths of a second; a signal in
that time would otherwise meet the default action and kill the process with no message and no exit 130.
Only the standard library and `roadbike.interrupt` are imported before the handlers are in place.
"""

from __future__ import annotations

import gc
import sys

from roadbike import interrupt


def main() -> int:
    interrupt.install("interrupted")
    from roadbike.cli import main as command

    code = command()
    # The process ends here. Its heap after a large plan is hundreds of megabytes of objects that die with
    # it: the full collection the interpreter runs on its way out would walk them all (0.4 s at 100
    # services) for nothing.
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(main())
