"""OCR engines for tests that run in spawned OCR worker processes (importable by name there)."""

import os
import signal
import time


class OneLineEngine:
    """One line of text per page; sleeps for ``delay`` seconds on pages wider than they are
    tall (a stand-in for a page that stalls OCR)."""

    name, version = "one-line", "1"

    def __init__(self, delay: float = 60.0, **_):
        self.delay = delay

    def __call__(self, image):
        height, width = image.shape[:2]
        if width > height:
            time.sleep(self.delay)
        return [([1.0, 1.0, 10.0, 5.0], "text", 0.9, [[1, 1], [11, 1], [11, 6], [1, 6]])]


class DyingEngine(OneLineEngine):
    """:class:`OneLineEngine` whose process is killed (SIGKILL, as by ``kill -9`` or a lost
    machine) on pages wider than they are tall."""

    name = "dying"

    def __call__(self, image):
        height, width = image.shape[:2]
        if width > height:
            os.kill(os.getpid(), signal.SIGKILL)
        return super().__call__(image)
