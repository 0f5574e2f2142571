"""Subclassing Thread: override run() and return the result instead of storing it.

Run it with ``python examples/tour/02_thread_subclass.py`` (well under a second).

``tw.Thread`` is a drop-in ``threading.Thread``: same constructor, same ``start()``,
``join()``, ``name`` and ``daemon``. What changes is that ``run()`` may simply *return* its
result (no ``self.result = ...`` attribute to set and read back) and that an exception raised
in ``run()`` is kept for ``result()`` to re-raise instead of only being printed.
"""

from __future__ import annotations

import threadwise as tw


class Countdown(tw.Thread):
    """Counts down from ``start_at``; run() returns the numbers it counted."""

    def __init__(self, start_at: int, name: str) -> None:
        super().__init__(name=name)
        self.start_at = start_at
        # Note: do not name an attribute ``result`` - it would hide the result() method.

    def run(self) -> list[int]:
        counted = []
        for n in range(self.start_at, 0, -1):
            counted.append(n)
            tw.sleep(0.01)
        return counted


class Checker(tw.Thread):
    """A run() that fails: the exception waits in the thread for whoever asks."""

    def run(self) -> None:
        raise ValueError(f"{self.name} found a problem")


def main() -> None:
    countdown = Countdown(3, name="countdown")
    print(f"before start(): state={countdown.state.name}, alive={countdown.is_alive()}")
    countdown.start()
    # result() waits for the thread (no join() needed) and returns what run() returned.
    print(f"{countdown.name}.result() -> {countdown.result()}")
    countdown.join()
    print(f"after join(): state={countdown.state.name}, alive={countdown.is_alive()}")

    # Like any thread, it can be started once only.
    try:
        countdown.start()
    except RuntimeError as exc:
        print(f"second start() raised RuntimeError: {exc}")

    # target= works too, exactly as with threading.Thread, and its return value is kept.
    adder = tw.Thread(target=sum, args=([1, 2, 3],), name="adder")
    adder.start()
    print(f"tw.Thread(target=sum).result() -> {adder.result()}")

    checker = Checker(name="checker")
    checker.start()
    try:
        checker.result()
    except ValueError as exc:
        print(f"a failing run(): result() re-raised ValueError: {exc}")
    print(f"checker state={checker.state.name}")


if __name__ == "__main__":
    main()
