#!/usr/bin/env python3
"""shm_state against what Python programs use for state shared between processes.

    python3 python/bench.py [--quick] [--module-dir DIR] [--rounds N]

Prints tables (ns per call, medians of rounds) for the demo's 96-byte `Telemetry`:

1. per call, each way of reading it from a live Rust writer (publishing 1,000 times a second),
   against unsynchronised reads of a plain mapping;
2. 64 KiB: `read_into` against a plain memcpy into the same buffer;
3. what releasing the GIL costs, against what copying costs (the threshold of the module);
4. state shared between processes, each contender with a writer publishing back to back and
   the same consistency check (every field derives from one counter): shm_state,
   mmap + struct (unsynchronised), multiprocessing.shared_memory + Lock, a Manager dict, Redis;
5. streams (every message, in order): shm_state against multiprocessing Queue and Pipe.

It builds the Rust writer it needs (`cargo build --release -p examples --bin bench_writer`),
starts `redis-server` on a Unix socket if it is installed (and `redis` imports), and skips
with a printed reason what the machine lacks. `--module-dir DIR` imports `shm_state` from DIR
(e.g. a copy of `target/release/libshm_state.so` named `shm_state.so`), so that two builds
can be compared in the same conditions. A benchmark, not a test: nothing here fails on a
figure.
"""

import argparse
import ctypes
import gc
import mmap
import multiprocessing as mp
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import timeit

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tick, stamp_ns, pos[3], vel[3], battery, status, mode (u32 length + 19 bytes), armed
TELEMETRY = struct.Struct("=QQ3d3dfII19sB")
assert TELEMETRY.size == 96
SLOT0_PAYLOAD = 256 + 64  # docs/segment-format.md: slot 0, after its sequence word's line


def value_bytes(n):
    """The 96 bytes of the value whose every field derives from `n` (as bench_writer)."""
    mode = b"mode-%d" % (n % 1_000_000)
    return TELEMETRY.pack(n, n, n, n, n, -n, -n, -n, n % 1024, n & 0xFFFFFFFF,
                          len(mode), mode, n & 1)


def whole_bytes(b):
    """Whether 96 bytes are one value, not parts of several."""
    (t, stamp, p0, p1, p2, v0, v1, v2, bat, status, mlen, mode, armed) = TELEMETRY.unpack(b)
    return (stamp == t and p0 == p1 == p2 == float(t) and v0 == v1 == v2 == -float(t)
            and bat == float(t % 1024) and status == t & 0xFFFFFFFF
            and mode[:mlen] == b"mode-%d" % (t % 1_000_000) and armed == t & 1)


def whole_dict(d):
    t = d["tick"]
    return (d["stamp_ns"] == t and d["pos"] == [float(t)] * 3 and d["vel"] == [-float(t)] * 3
            and d["battery"] == float(t % 1024) and d["status"] == t & 0xFFFFFFFF
            and d["mode"] == "mode-%d" % (t % 1_000_000) and d["armed"] == bool(t & 1))


def telemetry_descriptor():
    """The layout descriptor of the demo's Telemetry (docs/segment-format.md)."""
    def node(kind, size, align, body):
        return struct.pack("<BQQ", kind, size, align) + body

    def s(text):
        return struct.pack("<I", len(text)) + text

    def prim(tag, size):
        return node(1, size, size, bytes([tag]))

    def arr(n, el, size):
        return node(2, n * size, size, struct.pack("<Q", n) + el)

    fields = [(b"tick", 0, prim(4, 8)), (b"stamp_ns", 8, prim(4, 8)),
              (b"pos", 16, arr(3, prim(12, 8), 8)), (b"vel", 40, arr(3, prim(12, 8), 8)),
              (b"battery", 64, prim(11, 4)), (b"status", 68, prim(3, 4)),
              (b"mode", 72, node(4, 23, 1, struct.pack("<Q", 19))),
              (b"armed", 95, node(6, 1, 1, b""))]
    body = s(b"Telemetry") + b"\x01" + s(b"Telemetry") + struct.pack("<I", len(fields))
    for name, off, n in fields:
        body += s(name) + struct.pack("<Q", off) + n
    return node(3, 96, 8, body)


def bytes_descriptor(n):
    """The layout descriptor of `[u8; n]`."""
    return struct.pack("<BQQQ", 2, n, 1, n) + struct.pack("<BQQB", 1, 1, 1, 1)


class TelemetryC(ctypes.Structure):
    _fields_ = [("tick", ctypes.c_uint64), ("stamp_ns", ctypes.c_uint64),
                ("pos", ctypes.c_double * 3), ("vel", ctypes.c_double * 3),
                ("battery", ctypes.c_float), ("status", ctypes.c_uint32),
                ("mode_len", ctypes.c_uint32), ("mode", ctypes.c_uint8 * 19),
                ("armed", ctypes.c_uint8)]


assert ctypes.sizeof(TelemetryC) == 96


PIN = False  # --pin: reader on CPU 1, Python writers on CPU 0


def pin(cpu):
    if not PIN:
        return
    try:
        if len(os.sched_getaffinity(0)) > 1:
            os.sched_setaffinity(0, {cpu % os.cpu_count()})
    except (AttributeError, OSError):
        pass


class Timer:
    """Times statements. `cpu`: the reading thread's CPU time (`time.thread_time`), for what
    runs in this process without waiting: on a shared machine wall time would also count the
    slices other tenants run in. Otherwise wall time (`time.perf_counter`), for contenders that
    wait on another process."""

    def __init__(self, rounds, quick, cpu):
        self.rounds = rounds
        self.target = 0.003 if quick else 0.01  # seconds per batch
        self.clock = time.thread_time if cpu else time.perf_counter

    def _calibrated(self, stmt, namespace):
        t = timeit.Timer(stmt, timer=self.clock, globals=namespace)
        n = 1
        while True:
            dt = t.timeit(n)
            if dt > self.target / 4 or n >= 1 << 22:
                break
            n *= 4
        return t, max(1, int(n * self.target / max(dt, 1e-9)))

    def ns(self, stmt, namespace):
        """Median over rounds of the mean ns per run of the statement `stmt` (compiled inline
        in a loop, as `timeit` does: no function call around it, the garbage collector off)
        in a batch of about `target` seconds."""
        return self.many({stmt: stmt}, namespace)[stmt]

    def many(self, stmts, namespace):
        """`ns` of each statement of `stmts` (label: statement), every statement once per
        round: noise from other tenants then falls on all of them alike."""
        timers = {k: self._calibrated(stmt, namespace) for k, stmt in stmts.items()}
        per = {k: [] for k in stmts}
        for _ in range(self.rounds):
            for k, (t, n) in timers.items():
                per[k].append(t.timeit(n) / n * 1e9)
        return {k: statistics.median(v) for k, v in per.items()}


def table(title, header, rows):
    print("\n### " + title + "\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|")
    for r in rows:
        print("| " + " | ".join(str(c) for c in r) + " |")
    sys.stdout.flush()


def fmt(ns):
    return "n/a" if ns is None else f"{ns:,.0f}"


def ratio(a, b):
    return "" if a is None or b is None else f"{a / b:.2f}x"


def writer_binary():
    exe = os.path.join(ROOT, "target", "release", "bench_writer")
    if not os.path.exists(exe):
        print("building the Rust writer: cargo build --release -p examples --bin bench_writer")
        subprocess.run(["cargo", "build", "--release", "-p", "examples", "--bin", "bench_writer"],
                       cwd=ROOT, check=True)
    return exe


class RustWriter:
    """bench_writer in a mode; stops when its stdin closes."""

    def __init__(self, *args):
        self.p = subprocess.Popen([writer_binary(), *args], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True)
        line = self.p.stdout.readline()
        assert line.strip() == "ready", line

    def line(self, text=""):
        self.p.stdin.write(text + "\n")
        self.p.stdin.flush()
        return self.p.stdout.readline()

    def stop(self):
        self.p.stdin.close()
        self.p.wait(timeout=30)


def per_call(shm_state, timer, name_base):
    """The issue's table: each way of reading Telemetry, live Rust writer at 1 kHz."""
    name = name_base + "-percall"
    # The demo writer publishes the demo's Telemetry at 1 kHz.
    demo = os.path.join(ROOT, "target", "release", "writer")
    if not os.path.exists(demo):
        subprocess.run(["cargo", "build", "--release", "-p", "examples", "--bin", "writer"],
                       cwd=ROOT, check=True)
    w = subprocess.Popen([demo, "--name", name, "--rate", "1000", "--seconds", "600"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    try:
        w.stdout.readline()
        r = shm_state.Reader(name, telemetry_descriptor())
        rows = []
        s = TelemetryC()
        ba = bytearray(96)
        stmts = {"read": "r.read()", "read_into_ctypes": "r.read_into(s)",
                 "read_into_bytearray": "r.read_into(ba)"}
        try:
            import numpy as np
            arr = np.zeros(12, np.uint64)
            dt = np.dtype([("tick", "<u8"), ("stamp_ns", "<u8"), ("pos", "<f8", 3),
                           ("vel", "<f8", 3), ("battery", "<f4"), ("status", "<u4"),
                           ("mode_len", "<u4"), ("mode", "u1", 19), ("armed", "u1")])
            stmts["read_into_numpy"] = "r.read_into(arr)"
            stmts["read_numpy"] = "r.read_numpy(dt)"
        except ImportError:
            print("numpy not installed: skipping the numpy rows")
        f = open("/dev/shm/" + name.lstrip("/"), "rb")
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        lo, hi = SLOT0_PAYLOAD, SLOT0_PAYLOAD + 96
        unpack_from = TELEMETRY.unpack_from
        stmts.update({"read_bytes": "r.read_bytes()", "mmap_slice": "m[lo:hi]",
                      "struct_unpack": "unpack_from(m, lo)"})
        results = timer.many(stmts, locals())
        r.close()
        m.close()
        f.close()
    finally:
        w.terminate()
        w.wait()
        try:
            shm_state.remove(name)
        except Exception:
            pass
    labels = [("read", "`r.read()` (dict decoded by the stored layout)"),
              ("read_into_ctypes", "`r.read_into(ctypes_struct)`"),
              ("read_into_bytearray", "`r.read_into(bytearray(96))`"),
              ("read_into_numpy", "`r.read_into(numpy_array)`"),
              ("read_numpy", "`r.read_numpy(dtype)`"),
              ("read_bytes", "`r.read_bytes()`"),
              ("mmap_slice", "baseline, unsynchronised: `mmap` slice of the payload (can tear)"),
              ("struct_unpack",
               "baseline, unsynchronised: `struct.unpack_from` on the mapping (can tear)")]
    for key, label in labels:
        if key in results:
            rows.append((label, fmt(results[key]), ratio(results[key], results["read_bytes"]),
                         ratio(results[key], results["mmap_slice"])))
    table("Per call (reader CPU time): the demo's 96-byte Telemetry from a live Rust writer "
          "(1 kHz)",
          ["call", "ns per call", "vs read_bytes", "vs mmap slice"], rows)
    return results


def big_copy(shm_state, timer, name_base, sizes):
    """read_into at several sizes against a plain memcpy (memoryview slice assignment)."""
    rows = []
    out = {}
    for size in sizes:
        name = f"{name_base}-big{size}"
        w = shm_state.Writer.create(name, bytes_descriptor(size), bytes(size))
        try:
            r = shm_state.Reader(name)
            dst = bytearray(size)
            f = open("/dev/shm/" + name.lstrip("/"), "rb")
            m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
            src = memoryview(m)[SLOT0_PAYLOAD:SLOT0_PAYLOAD + size]
            dmv = memoryview(dst)
            got = timer.many({"into": "r.read_into(dst)", "bytes": "r.read_bytes()",
                              "memcpy": "dmv[:] = src"}, locals())
            into, rb, cp = got["into"], got["bytes"], got["memcpy"]
            src.release()
            dmv.release()
            m.close()
            f.close()
            r.close()
        finally:
            w.close()
            shm_state.remove(name)
        out[size] = (into, rb, cp)
        rows.append((f"{size:,} B", fmt(into), fmt(rb), fmt(cp), ratio(into, cp)))
    table("Copy size (reader CPU time): `read_into(bytearray)` and `read_bytes()` against a "
          "plain memcpy "
          "(`memoryview` slice assignment from the mapping, unsynchronised)",
          ["payload", "read_into ns", "read_bytes ns", "memcpy ns", "read_into / memcpy"], rows)
    return out


def gil_cost(shm_state, timer, name_base, copies):
    """What one GIL release and re-acquisition costs, against copies of several sizes."""
    name = name_base + "-gil"
    w = shm_state.Writer.create(name, bytes_descriptor(8), bytes(8))
    try:
        w.write(b"\x01" * 8)
        r = shm_state.Reader(name)
        # wait_for_update of an old version returns at once, but always releases the GIL.
        got = timer.many({"released": "r.wait_for_update(0, 1.0)", "held": "r.version()"},
                         locals())
        released, held = got["released"], got["held"]
        r.close()
    finally:
        w.close()
        shm_state.remove(name)
    cost = released - held
    rows = [("GIL release + re-acquire (wait_for_update returning at once, minus version())",
             fmt(cost))]
    for size, (_, _, cp) in sorted(copies.items()):
        rows.append((f"memcpy of {size:,} B", fmt(cp)))
    table("Releasing the GIL against copying (CPU time)", ["what", "ns"], rows)
    return cost


# --- contenders for shared state, each with a writer process publishing back to back ---

def _shm_lock_writer(shm_name, lock, stop):
    from multiprocessing import shared_memory
    pin(0)
    s = shared_memory.SharedMemory(name=shm_name)
    buf = s.buf
    n = 0
    while not stop.is_set():
        n += 1
        v = value_bytes(n)
        with lock:
            buf[0:96] = v
    del buf
    s.close()


def _manager_writer(d, stop):
    pin(0)
    n = 0
    while not stop.is_set():
        n += 1
        d["t"] = value_bytes(n)


def _redis_writer(sock, stop):
    import redis
    pin(0)
    c = redis.Redis(unix_socket_path=sock)
    n = 0
    while not stop.is_set():
        n += 1
        c.set("t", value_bytes(n))


def measure_state(timers, stmt, namespace, read, check, seconds):
    """(wall, CPU) ns per `stmt` (a read, while the writer runs), then `read()` and the
    consistency check for `seconds`: how many values were checked, how many were torn, how
    many distinct values were seen (a writer starved of CPU by other tenants, or descheduled
    whenever the reader runs, shows as few distinct values)."""
    ns = tuple(t.ns(stmt, namespace) for t in timers)
    torn = checked = 0
    seen = set()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            v = read()
            checked += 1
            if not check(v):
                torn += 1
            elif isinstance(v, dict):
                seen.add(v["tick"])
            elif isinstance(v, tuple):
                seen.add(v[0])
            else:
                seen.add(TELEMETRY.unpack_from(v)[0])
    return ns, (torn, checked), len(seen)


def contenders(shm_state, timers, name_base, seconds):
    rows = []
    ctx = mp.get_context("fork")

    def add(label, res, note=""):
        (wall, cpu), (torn, checked), distinct = res
        rows.append((label, fmt(wall), fmt(cpu), f"{torn:,} of {checked:,}", f"{distinct:,}",
                     note))

    # shm_state, Rust writer back to back.
    name = name_base + "-state"
    w = RustWriter("state", name)
    try:
        r = shm_state.Reader(name, telemetry_descriptor())
        add("shm_state `read()` (dict)",
            measure_state(timers, "r.read()", locals(), r.read, whole_dict, seconds))
        ba = bytearray(96)

        def into():
            r.read_into(ba)
            return ba
        add("shm_state `read_into(bytearray)`",
            measure_state(timers, "r.read_into(ba)", locals(), into, whole_bytes, seconds))
        add("shm_state `read_bytes()`",
            measure_state(timers, "r.read_bytes()", locals(), r.read_bytes, whole_bytes, seconds))
        r.close()
    finally:
        w.stop()

    # mmap + struct, unsynchronised, Rust writer back to back.
    path = f"/dev/shm/{name_base.lstrip('/')}-mmap"
    w = RustWriter("mmap", path)
    try:
        f = open(path, "rb")
        m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
        add("`mmap` slice, unsynchronised",
            measure_state(timers, "m[0:96]", locals(), lambda: m[0:96], whole_bytes, seconds))
        unpack_from = TELEMETRY.unpack_from

        def unpacked():
            return unpack_from(m, 0)

        def whole_tuple(t):
            return whole_bytes(TELEMETRY.pack(*t))
        add("`struct.unpack_from` on the mapping, unsynchronised",
            measure_state(timers, "unpack_from(m, 0)", locals(), unpacked, whole_tuple, seconds))
        m.close()
        f.close()
    finally:
        w.stop()

    # multiprocessing.shared_memory + multiprocessing.Lock, Python writer.
    from multiprocessing import shared_memory
    s = shared_memory.SharedMemory(create=True, size=96)
    s.buf[0:96] = value_bytes(0)
    lock = ctx.Lock()
    stop = ctx.Event()
    p = ctx.Process(target=_shm_lock_writer, args=(s.name, lock, stop))
    p.start()
    try:
        buf = s.buf

        def locked():
            with lock:
                return bytes(buf[0:96])
        add("`shared_memory` + `multiprocessing.Lock`",
            measure_state(timers, "with lock: bytes(buf[0:96])", locals(), locked, whole_bytes,
                          seconds), "Python writer")
        del buf
    finally:
        stop.set()
        p.join()
        s.close()
        s.unlink()

    # multiprocessing.Manager() dict proxy, Python writer.
    with ctx.Manager() as man:
        d = man.dict()
        d["t"] = value_bytes(0)
        stop = ctx.Event()
        p = ctx.Process(target=_manager_writer, args=(d, stop))
        p.start()
        try:
            add("`Manager().dict()` proxy",
                measure_state(timers, 'd["t"]', locals(), lambda: d["t"], whole_bytes,
                              seconds),
                "Python writer")
        finally:
            stop.set()
            p.join()

    # Redis on a Unix socket through redis-py, Python writer.
    server = shutil.which("redis-server")
    try:
        import redis
    except ImportError:
        redis = None
    if server is None or redis is None:
        why = ("redis-server is not installed (apt-get install redis-server)" if server is None
               else "redis-py is not installed (pip install redis)")
        print("Redis skipped: " + why)
    else:
        tmp = tempfile.mkdtemp(prefix="shm-bench-redis-")
        sock = os.path.join(tmp, "redis.sock")
        srv = subprocess.Popen([server, "--port", "0", "--unixsocket", sock, "--save", "",
                                "--appendonly", "no", "--dir", tmp],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(500):
                if os.path.exists(sock):
                    break
                time.sleep(0.01)
            c = redis.Redis(unix_socket_path=sock)
            c.set("t", value_bytes(0))
            stop = ctx.Event()
            p = ctx.Process(target=_redis_writer, args=(sock, stop))
            p.start()
            try:
                add("Redis `GET` (redis-py, Unix socket)",
                    measure_state(timers, 'c.get("t")', locals(), lambda: c.get("t"),
                                  whole_bytes, seconds),
                    "Python writer (`SET`)")
            finally:
                stop.set()
                p.join()
            c.close()
        finally:
            srv.terminate()
            srv.wait()
            shutil.rmtree(tmp, ignore_errors=True)
    table("Shared state between processes: a writer publishing back to back, "
          "reads checked (torn: fields from different values)",
          ["contender", "wall ns per read", "CPU ns per read (reader)", "torn",
           "distinct values seen", "note"], rows)
    print(f"\nEach contender's reads are checked for {seconds} s after its timing.")


def _queue_producer(q, n):
    pin(0)
    for i in range(1, n + 1):
        q.put(value_bytes(i))


def _pipe_producer(conn, n):
    pin(0)
    for i in range(1, n + 1):
        conn.send_bytes(value_bytes(i))
    conn.close()


def now():
    return time.perf_counter_ns(), time.thread_time_ns()


def wall_cpu(t0):
    """(wall, CPU) ns since `t0` (from `now()`)."""
    w, c = now()
    return w - t0[0], c - t0[1]


def streams(shm_state, name_base, messages, rounds):
    """Per message: the timed loops keep what they receive (checked afterwards) with the
    garbage collector off, as `timeit` runs; every way once per round."""
    gc.disable()
    try:
        return _streams(shm_state, name_base, messages, rounds)
    finally:
        gc.enable()


def _streams(shm_state, name_base, messages, rounds):
    rows = []
    name = name_base + "-stream"
    w = RustWriter("stream", name, str(messages))
    results = {}
    try:
        ways = {"recv() (dict)": None, "recv_bytes()": None, "recv_into(bytearray)": None,
                "Reader.read() (dict)": None, "Reader.read_into(bytearray)": None}
        rx = shm_state.StreamReader(name, telemetry_descriptor(), from_oldest=True)
        # The same type read from a state segment in the same loops, for comparison.
        state = shm_state.Writer.create(name + "-cmp", telemetry_descriptor(), value_bytes(1))
        r = shm_state.Reader(name + "-cmp")
        have_into = hasattr(rx, "recv_into")
        per = {k: [] for k in ways}
        lost = {k: 0 for k in ways}
        for _ in range(rounds):
            for label in ways:
                if label.startswith("recv_into") and not have_into:
                    continue
                gc.collect()
                got = [None] * messages
                if label.startswith("Reader.read()"):
                    read = r.read
                    t0 = now()
                    for i in range(messages):
                        got[i] = read(1.0)
                    dt = wall_cpu(t0)
                    lost[label] += sum(not whole_dict(d) for d in got)
                    per[label].append((dt[0] / messages, dt[1] / messages))
                    continue
                if label.startswith("Reader.read_into"):
                    got = [bytearray(96) for _ in range(messages)]
                    read_into = r.read_into
                    t0 = now()
                    for b in got:
                        read_into(b, 1.0)
                    dt = wall_cpu(t0)
                    lost[label] += sum(not whole_bytes(b) for b in got)
                    per[label].append((dt[0] / messages, dt[1] / messages))
                    continue
                w.line()
                expect = rx.position
                if label.startswith("recv()"):
                    recv = rx.recv
                    t0 = now()
                    for i in range(messages):
                        got[i] = recv(1.0)
                    dt = wall_cpu(t0)
                    for i, d in enumerate(got):
                        lost[label] += d["tick"] != expect + i or not whole_dict(d)
                elif label.startswith("recv_bytes"):
                    recv = rx.recv_bytes
                    t0 = now()
                    for i in range(messages):
                        got[i] = recv(1.0)
                    dt = wall_cpu(t0)
                    for i, (number, b) in enumerate(got):
                        lost[label] += number != expect + i or not whole_bytes(b)
                else:
                    got = [bytearray(96) for _ in range(messages)]
                    recv_into = rx.recv_into
                    t0 = now()
                    for b in got:
                        recv_into(b, 1.0)
                    dt = wall_cpu(t0)
                    for i, b in enumerate(got):
                        number = TELEMETRY.unpack_from(b)[0]
                        lost[label] += number != expect + i or not whole_bytes(b)
                per[label].append((dt[0] / messages, dt[1] / messages))
        rx.close()
        r.close()
        state.close()
        shm_state.remove(name + "-cmp")
        for label in ways:
            if per[label]:
                wall = statistics.median(p[0] for p in per[label])
                cpu = statistics.median(p[1] for p in per[label])
                results[label] = cpu
                state_read = label.startswith("Reader")
                rows.append((f"shm_state `{label}`", fmt(wall), fmt(cpu),
                             str(lost[label]),
                             "a state segment, the same loop, for comparison" if state_read
                             else "messages already sent"))
            else:
                rows.append((f"shm_state `{label}`", "n/a", "n/a", "", "not in this build"))
    finally:
        w.stop()
    ctx = mp.get_context("fork")
    for label, make in (("`multiprocessing.Queue` get()", "queue"),
                        ("`multiprocessing.Pipe` recv_bytes()", "pipe")):
        per = []
        bad = 0
        for _ in range(rounds):
            if make == "queue":
                q = ctx.Queue()
                p = ctx.Process(target=_queue_producer, args=(q, messages))
                p.start()
                get = q.get
            else:
                a, b = ctx.Pipe(duplex=False)
                p = ctx.Process(target=_pipe_producer, args=(b, messages))
                p.start()
                b.close()
                get = a.recv_bytes
            gc.collect()
            first = get()
            got = [None] * (messages - 1)
            t0 = now()
            for i in range(messages - 1):
                got[i] = get()
            dt = wall_cpu(t0)
            for i, v in enumerate(got):
                bad += TELEMETRY.unpack_from(v)[0] != i + 2 or not whole_bytes(v)
            per.append((dt[0] / (messages - 1), dt[1] / (messages - 1)))
            p.join()
            assert whole_bytes(first)
        rows.append((label, fmt(statistics.median(p[0] for p in per)),
                     fmt(statistics.median(p[1] for p in per)), str(bad),
                     "producer sending concurrently"))
    table(f"Streams: every message in order ({messages:,} per round, received in a timed loop, "
          "then checked)",
          ["contender", "wall ns per message", "CPU ns per message (reader)", "lost or torn",
           "note"], rows)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="short batches, few rounds")
    ap.add_argument("--module-dir", help="import shm_state from this directory")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--pin", action="store_true",
                    help="pin this process to CPU 1 and the Python writers to CPU 0")
    ap.add_argument("--only", default="", help="comma list: percall,copy,gil,state,streams")
    args = ap.parse_args()
    global PIN
    PIN = args.pin
    if args.module_dir:
        sys.path.insert(0, os.path.abspath(args.module_dir))
    import shm_state
    rounds = args.rounds or (3 if args.quick else 15)
    timer = Timer(rounds, args.quick, cpu=True)
    wall = Timer(rounds, args.quick, cpu=False)
    only = set(filter(None, args.only.split(",")))
    want = lambda k: not only or k in only  # noqa: E731
    pin(1)
    print(f"shm_state from {shm_state.__file__}")
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.2f}, {rounds} rounds")
    base = f"/shm-bench-py-{os.getpid()}"
    if want("percall"):
        per_call(shm_state, timer, base)
    copies = {}
    if want("copy") or want("gil"):
        sizes = [96, 1024, 4096, 16384, 65536, 262144] if not args.quick else [96, 65536]
        copies = big_copy(shm_state, timer, base, sizes)
    if want("gil"):
        gil_cost(shm_state, timer, base, copies)
    if want("state"):
        contenders(shm_state, (wall, timer), base, 0.1 if args.quick else 0.5)
    if want("streams"):
        streams(shm_state, base, 500 if args.quick else 2000, rounds)


if __name__ == "__main__":
    main()
