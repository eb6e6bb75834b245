"""How the command-line tools end on a user's mistake: one line naming the file or key and the
problem, exit status 2, no traceback. ``--debug`` (or ``DITOD_DEBUG=1``) lets the exception
through with its traceback. Programming errors (assertions, type errors) always show theirs."""

import os
import sys

__all__ = [
    "RunInterrupted",
    "add_debug_flag",
    "debug_requested",
    "error_line",
    "is_user_error",
    "run_tool",
]

EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports it


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during a run over pages; ``pages_done`` pages were finished (their outputs are
    whole: a rerun of the same command skips them)."""

    def __init__(self, pages_done: int):
        super().__init__(pages_done)
        self.pages_done = pages_done


def is_user_error(error: BaseException) -> bool:
    """An error whose message names the input and the problem: a missing or unreadable file, a
    bad value or key, weights or classes that do not fit (``layoutlmv3.IncompatibleWeights``,
    looked up only if loaded: this module imports no torch)."""
    from .extras import MissingExtra

    loading = sys.modules.get("layoutlmv3.loading")
    kinds = (OSError, ValueError, KeyError, MissingExtra)
    kinds += (loading.IncompatibleWeights,) if loading else ()
    return isinstance(error, kinds)


def error_line(error: BaseException) -> str:
    """One printable line for a failed page or input: the message of an error that names its
    input (:func:`is_user_error`), else the exception's type and message."""
    from .file_io import printable

    return printable(error if is_user_error(error) else f"{type(error).__name__}: {error}")


def debug_requested(argv=None) -> bool:
    argv = sys.argv[1:] if argv is None else argv
    return "--debug" in argv or os.environ.get("DITOD_DEBUG", "") not in ("", "0")


def add_debug_flag(parser) -> None:
    parser.add_argument(
        "--debug", action="store_true", help="show the traceback of errors (also DITOD_DEBUG=1)"
    )


def run_tool(main, *args, argv=None) -> int:
    """``main(*args)``; a user error (:func:`is_user_error`) becomes ``error: <message>`` on
    stderr and exit status 2, unless :func:`debug_requested`. Ctrl-C ends with one line and exit
    status 130."""
    try:
        if debug_requested(argv):
            return main(*args)
        return _run_reporting_user_errors(main, *args)
    except KeyboardInterrupt as interrupt:
        done = getattr(interrupt, "pages_done", None)
        after = "" if done is None else f" after {done} pages"
        print(f"\ninterrupted{after}; run the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run_reporting_user_errors(main, *args) -> int:
    try:
        return main(*args)
    except Exception as error:
        if not is_user_error(error):
            raise
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}\n(--debug or DITOD_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 2
