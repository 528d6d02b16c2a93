"""asyncio support of shm_state: `Reader.changed`, `StreamReader.recv_async` and `async for`.

Compiled into the extension and run as `shm_state._aio` when `shm_state` is imported; the
methods of the native classes call the coroutine functions here.

Every event loop gets one `WaitSet` (`_Dispatch`), whose descriptor the loop watches with
`add_reader`: a waiting coroutine attaches its reader to the set, awaits a future the
descriptor's callback resolves when the set reports the reader, and detaches in any case
(result, error, timeout or cancellation), which cancels the armed wait; the segment's waiter
count goes back down once the kernel has let go of it, which the set's next `ready()` (run by
the callback the cancellation itself triggers) collects. No thread per segment (none at all
with the io_uring backend), and no polling: the loop wakes when the kernel ends a wait (a
change, a writer's death, or the runtime's safety slice, after which the wait is re-armed).
"""

import asyncio
import weakref

# The native module, handed over by `_bind` once its classes exist.
_native = None
# One dispatch per running event loop; an entry goes with its loop.
_dispatches = weakref.WeakKeyDictionary()


def _bind(module):
    global _native
    _native = module


class _Dispatch:
    """One `WaitSet` for one event loop, its descriptor watched by the loop.

    Holds no reference to the loop (the loop holds it, through the callback), so that the
    pair goes away with the loop.
    """

    def __init__(self, loop):
        self.set = _native.WaitSet()
        # key -> the future of the coroutine waiting on it now.
        self.waiting = {}
        # Keys reported while their coroutine was not waiting (it re-checks before waiting
        # again, but is told anyway).
        self.reported = set()
        self.fd = self.set.fileno()
        loop.add_reader(self.fd, self._readable)
        weakref.finalize(self, _close, weakref.ref(loop), self.fd, self.set)

    def _readable(self):
        """The descriptor is readable (or a coroutine asks to arm): collect the ready keys."""
        try:
            keys = self.set.ready()
        except Exception as e:  # the set could not arm a wait: every waiter hears it
            for f in self.waiting.values():
                if not f.done():
                    f.set_exception(e)
            return
        for key in keys:
            f = self.waiting.get(key)
            if f is not None and not f.done():
                f.set_result(None)
            else:
                self.reported.add(key)

    def attach(self, reader):
        return self.set.attach(reader)

    def detach(self, key):
        self.waiting.pop(key, None)
        self.reported.discard(key)
        self.set.detach(key)

    async def ready(self, key):
        """Returns once the set reported `key` (since the last return for it)."""
        if key in self.reported:
            self.reported.discard(key)
            return
        f = asyncio.get_running_loop().create_future()
        self.waiting[key] = f
        try:
            # Arms the new key's wait (and reports it at once if it is ready already).
            self._readable()
            await f
        finally:
            if self.waiting.get(key) is f:
                del self.waiting[key]
            self.reported.discard(key)


def _close(loop_ref, fd, wait_set):
    loop = loop_ref()
    if loop is not None and not loop.is_closed():
        loop.remove_reader(fd)
    wait_set.close()


def _dispatch():
    loop = asyncio.get_running_loop()
    d = _dispatches.get(loop)
    if d is None:
        d = _dispatches[loop] = _Dispatch(loop)
    return d


async def _within(timeout, body):
    """Awaits `body` (a coroutine), raising `ShmTimeoutError` after `timeout` seconds."""
    if timeout is None:
        return await body
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            return await body
    except TimeoutError:
        raise _native.ShmTimeoutError("timed out") from None


async def changed(reader, since, timeout=None):
    """`Reader.changed`: the version once it is greater than `since`."""
    v = reader._changed_state(since)
    if v is not None:
        return v
    return await _within(timeout, _changed(reader, since))


async def _changed(reader, since):
    d = _dispatch()
    key = d.attach(reader)
    try:
        while True:
            # After attaching: a version published or a writer gone before is seen here.
            v = reader._changed_state(since)
            if v is not None:
                return v
            await d.ready(key)
    finally:
        d.detach(key)


async def recv(rx, timeout=None):
    """`StreamReader.recv_async`: the next message, decoded."""
    m = rx._try_recv_async()
    if m is not None:
        return m
    return await _within(timeout, _recv(rx))


async def _recv(rx):
    d = _dispatch()
    key = d.attach(rx)
    try:
        while True:
            m = rx._try_recv_async()
            if m is not None:
                return m
            await d.ready(key)
    finally:
        d.detach(key)
