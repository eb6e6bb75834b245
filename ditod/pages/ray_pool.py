"""Page jobs on a Ray cluster: a pool of actors (one engine or model each) fed one page at a
time, results returned to this (driver) process, which writes every output file itself.

Pages travel as bytes through Ray's object store, so the cluster's machines need no shared file
system. A page that fails is reported with its error; one whose actor dies (machine lost, worker
killed) or runs past the time limit is reported failed and its actor replaced; the run goes on.
Outputs are written per page as results arrive, so a rerun does only the missing pages.
"""

import logging
import re
import time
from collections import deque
from collections.abc import Callable, Iterable

from ..extras import import_extra

__all__ = ["ActorStartError", "connect_ray", "run_on_ray"]

logger = logging.getLogger(__name__)

# Seconds an actor may take to start (load its engine or model) before the run gives up.
ACTOR_START_TIMEOUT = 600.0


class ActorStartError(RuntimeError):
    """No actor of the pool could start; ``reason`` is the error it raised."""

    def __init__(self, reason: str):
        super().__init__(f"a Ray actor could not start: {reason}")
        self.reason = reason


def connect_ray(address: str):
    """Connect to the Ray cluster at ``address`` ("auto": the one this machine belongs to, as
    started by ``ray start``; "ray://host:10001": a remote one through Ray Client; "local": a
    fresh Ray instance on this machine) and return the ``ray`` module."""
    ray = import_extra("ray", "ray", "running on a Ray cluster (--ray-address)")

    if not ray.is_initialized():
        ray.init(
            address=None if address == "local" else address,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    return ray


def run_on_ray(
    address: str,
    actor_class,
    actor_args: tuple,
    method: str,
    items: Iterable,
    payload: Callable,
    on_result: Callable,
    on_error: Callable,
    *,
    workers=None,
    cpus: float = 1,
    gpus: float = 0,
    item_timeout=None,
) -> None:
    """Run ``actor.<method>(*payload(item))`` for each of ``items`` on a pool of ``workers``
    actors of ``actor_class(*actor_args)``, each reserving ``cpus`` CPUs and ``gpus`` GPUs.

    ``on_result(item, result)`` is called in this process as each result arrives;
    ``on_error(item, message)`` for an item that raised, whose actor died, or that ran past
    ``item_timeout`` seconds. ``workers`` defaults to as many actors as the cluster's CPUs (or
    GPUs) hold. An actor that cannot start raises ``RuntimeError`` with its error.
    """
    ray = connect_ray(address)
    from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

    remote = ray.remote(num_cpus=cpus, num_gpus=gpus)(actor_class)
    todo = deque(items)
    if not todo:
        return
    resources = ray.cluster_resources()
    fits = int(resources.get("GPU", 0) // gpus) if gpus else int(resources.get("CPU", 0) // cpus)
    if fits < 1:
        raise RuntimeError(
            f"the Ray cluster ({resources.get('CPU', 0):g} CPUs, "
            f"{resources.get('GPU', 0):g} GPUs) cannot hold one actor of {cpus:g} "
            f"CPUs and {gpus:g} GPUs"
        )
    if workers and workers > fits:
        logger.warning("Ray: %d actors asked for, the cluster holds %d", workers, fits)
    workers = max(1, min(workers or fits, fits, len(todo)))
    actors = [remote.remote(*actor_args) for _ in range(workers)]
    _wait_ready(ray, actors, GetTimeoutError, RayActorError, RayTaskError)
    logger.info("Ray: %d actors (%g CPU, %g GPU each) for %d items", workers, cpus, gpus, len(todo))
    idle, running = list(actors), {}
    while todo or running:
        while todo and idle:
            actor, item = idle.pop(), todo.popleft()
            ref = getattr(actor, method).remote(*payload(item))
            running[ref] = (actor, item, time.monotonic())
        done, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
        for ref in done:
            actor, item, _ = running.pop(ref)
            try:
                result = ray.get(ref)
            except RayTaskError as error:
                on_error(item, _message(error))
                idle.append(actor)
            except RayActorError as error:
                on_error(item, f"its Ray worker died ({type(error).__name__}); rerun to retry")
                idle.append(_replace(ray, remote, actor_args, actor))
            else:
                on_result(item, result)
                idle.append(actor)
        if item_timeout:
            now = time.monotonic()
            for ref, (actor, item, started) in list(running.items()):
                if now - started > item_timeout:
                    running.pop(ref)
                    on_error(
                        item,
                        f"ran past the {item_timeout:g} s time limit; its Ray worker was stopped",
                    )
                    idle.append(_replace(ray, remote, actor_args, actor))
    for actor in idle:
        ray.kill(actor)


def _wait_ready(ray, actors, timeout_error, actor_error, task_error) -> None:
    try:
        ray.get([actor.__ray_ready__.remote() for actor in actors], timeout=ACTOR_START_TIMEOUT)
    except timeout_error:
        raise ActorStartError(f"not started within {ACTOR_START_TIMEOUT:g} s") from None
    except (actor_error, task_error) as error:
        raise ActorStartError(_message(error)) from None


def _message(error: Exception) -> str:
    """``Type: message`` of the exception raised on the Ray worker (Ray wraps it in its own
    error, whose text is the remote traceback)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException) and cause is not error:
        return f"{type(cause).__name__}: {cause}"
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    return next((line for line in reversed(lines) if line), type(error).__name__)


def _replace(ray, remote, actor_args, actor):
    ray.kill(actor)
    return remote.remote(*actor_args)
