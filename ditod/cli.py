"""How the command-line tools end on a user's mistake: one line naming the file or key and the
problem, exit status 2, no traceback. ``--debug`` (or ``DITOD_DEBUG=1``) lets the exception
through with its traceback. Programming errors (assertions, type errors) always show theirs."""

import os
import sys

__all__ = ["add_debug_flag", "debug_requested", "is_user_error", "run_tool"]


def is_user_error(error: BaseException) -> bool:
    """An error whose message names the input and the problem: a missing or unreadable file, a
    bad value or key, weights or classes that do not fit (``layoutlmv3.IncompatibleWeights``,
    looked up only if loaded: this module imports no torch)."""
    loading = sys.modules.get("layoutlmv3.loading")
    kinds = (OSError, ValueError, KeyError) + ((loading.IncompatibleWeights,) if loading else ())
    return isinstance(error, kinds)


def debug_requested(argv=None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("DITOD_DEBUG", "") not in ("", "0")


def add_debug_flag(parser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of errors (also DITOD_DEBUG=1)"
    )


def run_tool(main, *args, argv=None) -> int:
    """``main(*args)``; a user error (:func:`is_user_error`) becomes ``error: <message>`` on
    stderr and exit status 2, unless :func:`debug_requested`."""
    if debug_requested(argv):
        return main(*args)
    try:
        return main(*args)
    except Exception as error:
        if not is_user_error(error):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}\n(--debug or DITOD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
