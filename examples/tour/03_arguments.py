"""Arguments: pass positional and keyword arguments to the function a thread runs.

Run it with ``python examples/tour/03_arguments.py`` (well under a second).

``tw.spawn(fn, *args, **kwargs)`` takes the arguments the way you would write the call, so
there is no ``args=(x,)`` tuple to get wrong, and a type checker checks them against ``fn``'s
signature. ``tw.Thread`` keeps threading's ``args=`` / ``kwargs=`` for code that uses them.
Context variables (``contextvars``) travel into the thread with the task.
"""

from __future__ import annotations

import contextvars
import functools

import threadwise as tw

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="none")


def greet(name: str, greeting: str = "Hello", *, punctuation: str = "!") -> str:
    return f"{greeting}, {name}{punctuation}"


def tagged(message: str) -> str:
    # Reads a context variable set by whoever spawned the task.
    return f"[{request_id.get()}] {message}"


def main() -> None:
    positional = tw.spawn(greet, "Ada", "Hi")
    keyword = tw.spawn(greet, name="Grace", greeting="Hey")
    mixed = tw.spawn(greet, "Alan", punctuation="?")
    print(f"positional: {positional.result()}")
    print(f"keyword:    {keyword.result()}")
    print(f"mixed:      {mixed.result()}")

    # The threading-style spelling, for code being ported.
    thread = tw.Thread(target=greet, args=("Linus",), kwargs={"greeting": "Howdy"})
    thread.start()
    print(f"tw.Thread(args=..., kwargs=...): {thread.result()}")

    # Arguments fixed in advance with functools.partial work like any callable.
    polite = functools.partial(greet, greeting="Good evening")
    print(f"partial:    {tw.spawn(polite, 'Barbara').result()}")

    # The classic slip: spawn(greet("Ada")) calls greet right here and passes its *result*.
    # threadwise refuses it with a message that shows the fix.
    try:
        tw.spawn(greet("Ada"))  # type: ignore[arg-type]
    except TypeError as exc:
        print(f"spawn(greet('Ada')) raised TypeError: {exc}")

    # The task runs in a copy of the spawner's context: the request id goes along.
    request_id.set("req-42")
    print(f"contextvars: {tw.spawn(tagged, 'handled in another thread').result()}")


if __name__ == "__main__":
    main()
