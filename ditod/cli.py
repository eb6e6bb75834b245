"""How the command-line tools end on a user's mistake: one line naming the file or key and the
problem, exit status 2, no traceback. ``--debug`` (or ``DITOD_DEBUG=1``) lets the exception
through with its traceback. Programming errors (assertions, type errors) always show theirs."""

import os
import sys

from layoutlmv3.loading import IncompatibleWeights

__all__ = ["USER_ERRORS", "add_debug_flag", "debug_requested", "run_tool"]

# Errors whose message names the input and the problem: a missing or unreadable file, a bad
# value or key, weights or classes that do not fit, an OCR engine that is not installed.
USER_ERRORS = (OSError, ValueError, KeyError, IncompatibleWeights)


def debug_requested(argv=None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("DITOD_DEBUG", "") not in ("", "0")


def add_debug_flag(parser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of errors (also DITOD_DEBUG=1)"
    )


def run_tool(main, *args, argv=None) -> int:
    """``main(*args)``; a :data:`USER_ERRORS` exception becomes ``error: <message>`` on stderr
    and exit status 2, unless :func:`debug_requested`."""
    if debug_requested(argv):
        return main(*args)
    try:
        return main(*args)
    except USER_ERRORS as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}\n(--debug or DITOD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
