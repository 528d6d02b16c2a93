"""Follow a shared-state segment and a stream at once in one asyncio event loop.

    python3 asyncio_reader.py STATE STREAM [COUNT]

Prints each new value of the state segment STATE and each message of the stream STREAM (both
decoded by the layout they store) until it has seen COUNT of each (default 5), then exits.
Both waits go through the event loop's one shm_state.WaitSet descriptor: no thread is started
and nothing polls.
"""

import asyncio
import sys

import shm_state


async def follow_state(reader, count):
    version = reader.version()
    for _ in range(count):
        version = await reader.changed(version, timeout=30)
        print("state", version, reader.read())


async def follow_stream(stream, count):
    seen = 0
    while seen < count:
        try:
            async for message in stream:
                print("message", message)
                seen += 1
                if seen == count:
                    break
        except shm_state.LaggedError as gap:
            print("lagged: missed", gap.missed)


async def main(state_name, stream_name, count):
    with shm_state.Reader(state_name) as reader, shm_state.StreamReader(stream_name) as stream:
        await asyncio.gather(follow_state(reader, count), follow_stream(stream, count))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5))
