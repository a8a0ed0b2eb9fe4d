"""One inference process and the socket to it: a call is one pickled message each way.

The worker's event loop writes a call (a module-level function and its arguments) to a socket pair and reads the
answer when the process sends it; the process runs one call at a time. A ``ProcessPoolExecutor`` per slot did the
same through a queue-feeder thread and a management thread on each side, which woke for every photo: 0.22 against
0.09 ms of the worker's CPU per photo on an idle box (``python -m benchmarks.bench_slot``), and more in the whole
product, where those threads wait for a CPU. The process's death (a crash, an OOM kill, our SIGKILL) is the
socket's end, which the waiting call sees at once; the worker's death closes the process's end of the socket,
which makes it exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import socket
import struct
import traceback
from collections.abc import Callable
from multiprocessing.context import SpawnContext
from typing import Any, TypeVar

T = TypeVar("T")

_LENGTH = struct.Struct("!Q")  # each message: its length, then its pickle
_PROTOCOL = pickle.HIGHEST_PROTOCOL
STOP_GRACE_S = 10.0  # how long a stopping process may take to finish before it is killed


class SlotDied(Exception):
    """The slot's process ended before it answered (it crashed, was killed, or never started)."""


class RemoteTraceback(Exception):
    """Where an exception raised in the slot's process came from (set as its ``__cause__``)."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def __str__(self) -> str:
        return self.text


# --- inside the slot's process ---------------------------------------------------------------------


def serve(sock: socket.socket, initializer: Callable[..., None], initargs: tuple[Any, ...]) -> None:
    """The process's whole life: ``initializer(*initargs)``, then answer calls until the worker's end closes."""
    initializer(*initargs)
    with sock:
        while (request := _receive(sock)) is not None:
            function, args = pickle.loads(request)
            try:
                answer: tuple[Any, ...] = (True, function(*args))
            except Exception as exc:
                answer = (False, exc, traceback.format_exc())
            try:
                data = pickle.dumps(answer, _PROTOCOL)
            except Exception as exc:  # an answer that cannot cross: say what it was
                data = pickle.dumps((False, RuntimeError(f"unpicklable answer: {exc!r}"), ""), _PROTOCOL)
            try:
                sock.sendall(_LENGTH.pack(len(data)))
                sock.sendall(data)
            except OSError:  # the worker is gone
                return


def _receive(sock: socket.socket) -> bytearray | None:
    """One message, or None when the worker's end is closed."""
    header = _exactly(sock, _LENGTH.size)
    if header is None:
        return None
    return _exactly(sock, _LENGTH.unpack(header)[0])


def _exactly(sock: socket.socket, size: int) -> bytearray | None:
    """``size`` bytes read straight into one buffer (the photo is not copied again), or None at the end."""
    buffer = bytearray(size)
    view, got = memoryview(buffer), 0
    while got < size:
        read = sock.recv_into(view[got:])
        if read == 0:
            return None
        got += read
    return buffer


# --- in the worker process -------------------------------------------------------------------------


class SlotProcess:
    """A spawned process that runs ``initializer(*initargs)`` once, then the calls sent to it, one at a time."""

    def __init__(
        self, context: SpawnContext, initializer: Callable[..., None], initargs: tuple[Any, ...], *, name: str
    ) -> None:
        self._sock, child = socket.socketpair()
        self._child: socket.socket | None = child
        self._process = context.Process(target=serve, args=(child, initializer, initargs), name=name, daemon=True)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    @property
    def pid(self) -> int:
        return self._process.pid or 0

    async def start(self) -> None:
        """Spawn the process (its initializer runs there; a call waits for it to finish)."""
        self._process.start()
        if self._child is not None:
            self._child.close()  # the process holds its own copy: its end closes when it dies
            self._child = None
        self._reader, self._writer = await asyncio.open_connection(sock=self._sock)

    @property
    def running(self) -> bool:
        """Started, and no call to it has been interrupted or found it dead."""
        return self._writer is not None

    async def call(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)`` in the process; raises what it raised, or SlotDied if the process ended first.

        A call that is interrupted (cancelled) would leave the socket mid-message: the process is killed."""
        if self._reader is None or self._writer is None:
            raise SlotDied("the inference process is not running")
        payload = pickle.dumps((function, args), _PROTOCOL)
        try:
            self._writer.write(_LENGTH.pack(len(payload)))
            self._writer.write(payload)
            await self._writer.drain()
            header = await self._reader.readexactly(_LENGTH.size)
            data = await self._reader.readexactly(_LENGTH.unpack(header)[0])
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            self.kill()
            raise SlotDied("the inference process died") from exc
        except BaseException:
            self.kill()
            raise
        answer = pickle.loads(data)
        if answer[0]:
            result: T = answer[1]
            return result
        _, error, remote = answer
        if remote:
            error.__cause__ = RemoteTraceback(remote)
        raise error

    def kill(self) -> None:
        """End the process now (it hangs, or it died already) and close the socket; it is reaped later."""
        if self._process.pid is not None and self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                self._process.kill()
        self._close_socket()

    async def stop(self) -> None:
        """Let the process finish and exit (its end of the socket closes), killing it if it takes too long."""
        self._close_socket()
        if self._process.pid is None:
            return
        await asyncio.to_thread(self._process.join, STOP_GRACE_S)
        if self._process.exitcode is None:
            self._process.kill()
            await asyncio.to_thread(self._process.join)

    def _close_socket(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._reader = self._writer = None
        else:
            self._sock.close()
        if self._child is not None:
            self._child.close()
            self._child = None
