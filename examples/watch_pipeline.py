"""A small pipeline that is worth watching: one slow stage, idle workers behind it, a service.

Run it on its own (about two seconds)::

    python examples/watch_pipeline.py

or under the live thread table, to see which threads work and which wait, and on what::

    threadwise watch examples/watch_pipeline.py

    source ──> fetch (4 threads, 0.2 s per item: the bottleneck)
           ──> resize (2 threads, fast: mostly BLOCKED in Queue.get, waiting for fetch)
           ──> store (1 thread)

A ``heartbeat`` service prints the progress every half second and is stopped gracefully at the
end. The "network" is simulated with ``tw.sleep``.
"""

from __future__ import annotations

import sys
import threading

import threadwise as tw

_stored: list[int] = []
_stored_lock = threading.Lock()


def fetch(image_id: int) -> bytes:
    """Download one image: slow, so this stage is the bottleneck."""
    tw.sleep(0.2)
    return bytes([image_id % 256]) * 64


def resize(image: bytes) -> bytes:
    """Make a thumbnail: quick, so its workers mostly wait for fetch."""
    tw.sleep(0.005)
    return image[:16]


def store(thumbnail: bytes) -> None:
    with _stored_lock:
        _stored.append(thumbnail[0])


def heartbeat() -> None:
    with _stored_lock:
        done = len(_stored)
    print(f"heartbeat: {done} thumbnails stored so far", flush=True)


def main(images: int = 40) -> int:
    with tw.Service(heartbeat, interval=0.5, name="heartbeat"):
        report = (
            tw.Pipeline(range(images), name="thumbnails")
            .map(fetch, workers=4, name="fetch")
            .map(resize, workers=2, name="resize")
            .each(store, name="store")
            .run()
        )
    print(report)
    print(f"stored {len(_stored)} of {images} thumbnails; bottleneck: {report.bottleneck}")
    return 0 if len(_stored) == images else 1


if __name__ == "__main__":
    sys.exit(main())
