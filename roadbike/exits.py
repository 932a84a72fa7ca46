"""The exit codes of every roadbike command, one meaning each.

0  passed: no mandatory violation (plan), every check passed (verify)
1  mandatory policy violations (plan), a failed check (verify)
2  bad input or usage: the stack config, the arguments, the files given; nothing was planned or sent
3  internal error: a crash, the policy pack died, the plan could not be written (a full disk)
130 interrupted (Ctrl-C, SIGTERM)
"""

from __future__ import annotations

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
