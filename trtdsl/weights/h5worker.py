"""Every call into HDF5's C library, behind a pipe: the worker side and the client that talks to it.

HDF5 parses object headers, attributes, links and chunk indexes in C, and a
corrupt file can make it crash or loop (one flipped byte in a Keras ``.h5``
did both). So trtdsl never lets HDF5 read an untrusted file in the caller's
process. A long-lived worker (this file run as a script: it imports only
h5py and NumPy, never trtdsl) answers two requests:

- ``describe``: the file's structure as plain data (names, dtypes, shapes,
  layouts, file offsets of contiguous data, string attributes, links), which
  the caller checks and then maps contiguous data from directly;
- ``read``: the decoded bytes of one chunked, compressed or compact dataset,
  streamed in slabs.

Answers are length-prefixed JSON and raw bytes, never pickles. A crash, a
hang past the timeout or a memory blow-up kills only the worker; the client
raises :class:`WeightError` naming the file and starts a fresh worker next
time. ``trusted=True`` runs the same two functions in-process.
"""

from __future__ import annotations

import atexit
import io
import json
import math
import os
import select
import signal
import struct
import subprocess
import sys
import threading
from typing import Any

import h5py
import numpy as np

_FRAME = struct.Struct("<cQ")  # kind (b"J" json answer, b"D" data slab, b"E" error), payload length
SLAB = 16 << 20  # bytes of a chunked dataset read and sent at a time: the worker never holds a whole weight


class Refused(Exception):
    """The file asks for something trtdsl never does (the worker's answer names it)."""


class Window(io.RawIOBase):
    """A read-only file object over bytes ``[start, start+size)`` of a file, e.g. one stored zip member."""

    def __init__(self, path: str, start: int, size: int):
        self._f = open(path, "rb")
        self._start, self._size, self._pos = start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, pos: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buf) -> int:
        n = max(0, min(len(buf), self._size - self._pos))
        self._f.seek(self._start + self._pos)
        got = self._f.readinto(memoryview(buf)[:n])
        self._pos += got
        return got

    def close(self) -> None:
        self._f.close()
        super().close()


# ------------------------------------------------------------------ worker side (plain functions)
_open: dict[tuple, h5py.File] = {}
LOCK = threading.RLock()  # trusted (in-process) callers share the one kept file: one at a time


def _file(path: str, base: int, size: int | None) -> h5py.File:
    """The HDF5 image at ``[base, base+size)`` of ``path`` (the whole file when size is None); kept open."""
    st = os.stat(path)
    key = (path, base, size, st.st_ino, st.st_size, st.st_mtime_ns)
    f = _open.get(key)
    if f is None:
        forget()
        if size is None:
            f = h5py.File(path, "r")
        else:
            f = h5py.File(Window(path, base, size), "r")
        _open[key] = f
    return f


def forget() -> None:
    """Close the file kept open (a temporary file can then go away)."""
    for f in _open.values():
        try:
            f.close()
        except Exception:
            pass
    _open.clear()


# Close kept files before interpreter teardown: an h5py file over a Python file object (a zip member's Window)
# that is still open when modules are torn down crashes in HDF5's close (SIGSEGV at exit, seen with trusted=True).
atexit.register(forget)


def _text(name: Any, what: str) -> str:
    if isinstance(name, bytes):
        try:
            return name.decode("utf-8")
        except UnicodeDecodeError:
            raise Refused(f"{what} {name[:40]!r} is not UTF-8") from None
    name = str(name)
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:  # h5py keeps undecodable bytes as surrogates
        raise Refused(f"{what} {name[:40].encode('utf-8', 'surrogateescape')!r} is not UTF-8") from None
    return name


def _attrs(obj: Any, budget: list[int], where: str) -> dict[str, Any]:
    """String and small numeric attributes as JSON values; other kinds are left out."""
    out: dict[str, Any] = {}
    for raw in obj.attrs:
        key = _text(raw, f"attribute name on {where!r}")
        value = obj.attrs[raw]
        if isinstance(value, (bytes, str)):
            value = _text(value, f"attribute {key!r} on {where!r}")
            budget[0] -= len(value)
        elif isinstance(value, np.ndarray) and value.dtype.kind in "SOU" and value.ndim <= 1:
            value = [_text(v, f"attribute {key!r} on {where!r}") for v in value.reshape(-1)]
            budget[0] -= sum(len(v) for v in value)
        elif isinstance(value, (np.ndarray, np.generic)) and value.dtype.kind in "biuf" and value.size <= 64:
            value = np.asarray(value).tolist()
        else:
            continue
        if budget[0] < 0:
            raise Refused("its attributes hold more text than limits.max_json_bytes")
        out[key] = value
    return out


def _dataset(ds: h5py.Dataset) -> dict[str, Any]:
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    kinds = {h5py.h5d.CONTIGUOUS: "contiguous", h5py.h5d.CHUNKED: "chunked", h5py.h5d.COMPACT: "compact"}
    virtual = getattr(h5py.h5d, "VIRTUAL", None)
    dtype = ds.dtype
    numeric = dtype.kind in "biuf" and dtype.fields is None and dtype.subdtype is None
    info: dict[str, Any] = {
        "kind": "dataset",
        "dtype": dtype.str if numeric else None,
        "type": str(dtype),
        "shape": [int(d) for d in ds.shape] if ds.shape is not None else None,
        "layout": "virtual" if layout == virtual else kinds.get(layout, f"layout {layout}"),
        "external": int(dcpl.get_external_count()),
        "filters": int(dcpl.get_nfilters()),
        "storage": int(ds.id.get_storage_size()),
        "offset": None,
    }
    if info["layout"] == "contiguous" and not info["external"]:
        offset = ds.id.get_offset()
        info["offset"] = None if offset is None else int(offset)
    return info


def describe(path: str, base: int = 0, size: int | None = None, max_entries: int = 10**6, max_text: int = 64 << 20):
    """The structure of one HDF5 image as plain data: ``{"nodes": {path: info}, "links": {path: info}}``.

    Only hard links are walked. Soft, external and user-defined links are
    listed, not followed, so the caller can refuse them by name.
    """
    f = _file(path, base, size)
    budget = [max_text]
    nodes: dict[str, Any] = {"": {"kind": "group", "attrs": _attrs(f, budget, "/")}}
    links: dict[str, Any] = {}

    failed: list[BaseException] = []

    def visit(name: bytes, link: Any) -> bool | None:
        # The low-level walk hands over raw name bytes (h5py's high-level one fails inside its own callback on a
        # name that is not UTF-8). An exception is kept and the walk stopped (a non-None return value stops it).
        try:
            _visit(name, link)
        except Exception as e:
            failed.append(e)
            return True
        return None

    def _visit(raw: bytes, link: Any) -> None:
        name = _text(raw, "object name")
        if len(nodes) + len(links) > max_entries:
            raise Refused(f"it holds more than limits.max_entries={max_entries} objects")
        if link.type == h5py.h5l.TYPE_SOFT:
            links[name] = {"type": "soft", "target": _text(f.id.links.get_val(raw), "soft link target")[:200]}
        elif link.type == h5py.h5l.TYPE_EXTERNAL:
            target = _text(f.id.links.get_val(raw)[0], "external link file")[:200]
            links[name] = {"type": "external", "target": target}
        elif link.type != h5py.h5l.TYPE_HARD:
            links[name] = {"type": "user-defined", "target": ""}
        else:
            oid = h5py.h5o.open(f.id, raw)  # by the walk's own name: no second path lookup from the root
            kind = h5py.h5i.get_type(oid)
            obj = h5py.Dataset(oid) if kind == h5py.h5i.DATASET else h5py.Group(oid) if kind == h5py.h5i.GROUP else None
            if isinstance(obj, h5py.Dataset):
                nodes[name] = {**_dataset(obj), "attrs": {}}  # no loader reads dataset attributes
            elif isinstance(obj, h5py.Group):
                nodes[name] = {"kind": "group", "attrs": _attrs(obj, budget, name)}
            else:
                nodes[name] = {"kind": "other", "attrs": {}}

    f.id.links.visit(visit, info=True)
    if failed:
        raise failed[0]
    return {"nodes": nodes, "links": links}


def read_slabs(path: str, base: int, size: int | None, name: str):
    """The raw bytes of dataset ``name`` in C order and its stored dtype, yielded in slabs of about SLAB bytes."""
    f = _file(path, base, size)
    ds = f[name]
    if not isinstance(ds, h5py.Dataset):
        raise Refused(f"{name!r} is not a dataset")
    info = _dataset(ds)
    if info["external"] or info["layout"] == "virtual":
        raise Refused(f"dataset {name!r} keeps its data outside this file")
    if not ds.shape:
        yield np.ascontiguousarray(ds[()]).tobytes()
        return
    row = math.prod(ds.shape[1:]) * ds.dtype.itemsize
    step = max(1, SLAB // max(row, 1))
    for i in range(0, ds.shape[0], step):
        slab = np.ascontiguousarray(ds[i : i + step])
        yield memoryview(slab.reshape(-1).view(np.uint8))


def _send(out, kind: bytes, payload: bytes | memoryview) -> None:
    out.write(_FRAME.pack(kind, len(payload)))
    out.write(payload)


def serve() -> None:
    """The worker's loop: one JSON request per line on stdin, framed answers on stdout."""
    try:
        import resource

        limit = int(sys.argv[1]) if len(sys.argv) > 1 else 0
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    except (ImportError, ValueError, OSError):
        pass
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        req = json.loads(line)
        try:
            if req["op"] == "describe":
                answer = describe(req["path"], req["base"], req["size"], req["max_entries"], req["max_text"])
                _send(out, b"J", json.dumps(answer).encode())
            elif req["op"] == "read":
                for slab in read_slabs(req["path"], req["base"], req["size"], req["name"]):
                    _send(out, b"D", slab)
                _send(out, b"J", b"{}")
            elif req["op"] == "forget":
                forget()
                _send(out, b"J", b"{}")
        except Refused as e:
            _send(out, b"E", json.dumps({"refused": True, "message": str(e)[:400]}).encode())
        except Exception as e:
            message = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"[:400]
            _send(out, b"E", json.dumps({"refused": False, "message": message}).encode())
        out.flush()


# ------------------------------------------------------------------ client side
class WorkerError(Exception):
    """The worker crashed, hung or refused; ``refused`` tells a hostile file from a broken one."""

    def __init__(self, message: str, *, refused: bool = False, crashed: bool = False):
        super().__init__(message)
        self.refused, self.crashed = refused, crashed


_BOOT = (
    "import sys, runpy; sys.path[:0] = sys.argv[3:]; sys.argv = sys.argv[1:3]; "
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


class Client:
    """One long-lived worker process per client process, started on first use, replaced after a failure."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.owner = self.memory = 0
        self.lock = threading.Lock()

    def _start(self, memory: int) -> subprocess.Popen:
        if self.proc is not None and self.owner == os.getpid() and self.proc.poll() is None:
            if memory == self.memory:
                return self.proc
            self.kill()  # another memory limit: it is set when the worker starts
        self.proc, self.memory = None, memory
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        # -I: neither the working directory nor this package's folder can shadow a module the worker
        # imports; h5py and NumPy come from where this process found them.
        where = sorted({os.path.dirname(os.path.dirname(m.__file__)) for m in (h5py, np)})
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-u", "-c", _BOOT, __file__, str(memory), *where],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self.owner = os.getpid()
        try:
            import fcntl

            fcntl.fcntl(self.proc.stdout.fileno(), 1031, 1 << 20)  # F_SETPIPE_SZ: fewer, larger reads
        except (ImportError, OSError):
            pass
        return self.proc

    def kill(self) -> None:
        if self.proc is not None and self.owner == os.getpid():
            try:
                self.proc.kill()
                self.proc.wait(5)
            except Exception:
                pass
        self.proc = None

    def _exact(self, fd: int, n: int, deadline: float, into: memoryview | None = None) -> bytes | None:
        import time

        buf = into if into is not None else memoryview(bytearray(n))
        got = 0
        while got < n:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            k = os.readv(fd, [buf[got:n]])
            if not k:
                raise EOFError
            got += k
        return None if into is not None else bytes(buf)

    def request(self, req: dict, *, timeout: float, memory: int, sink: Any = None) -> Any:
        """Send one request; ``sink(nbytes) -> memoryview`` receives data slabs. Raises WorkerError."""
        import time

        with self.lock:
            proc = self._start(memory)
            deadline = time.monotonic() + timeout
            try:
                proc.stdin.write(json.dumps(req).encode() + b"\n")
                proc.stdin.flush()
                fd = proc.stdout.fileno()
                while True:
                    kind, n = _FRAME.unpack(self._exact(fd, _FRAME.size, deadline))
                    if kind == b"D":
                        target = sink(n) if sink is not None else None
                        if target is None or len(target) != n:
                            raise WorkerError("the HDF5 worker sent more data than the dataset declares")
                        self._exact(fd, n, deadline, into=target)
                        continue
                    if n > 1 << 31:
                        raise WorkerError("the HDF5 worker sent an answer too large to be one")
                    payload = json.loads(self._exact(fd, n, deadline))
                    if kind == b"J":
                        return payload
                    raise WorkerError(payload["message"], refused=bool(payload["refused"]))
            except TimeoutError:
                self.kill()
                raise WorkerError(f"HDF5 did not answer within {timeout:.0f} s (killed it)", crashed=True) from None
            except (EOFError, BrokenPipeError, OSError, struct.error, ValueError) as e:
                try:
                    code = proc.wait(5)  # a dead worker's pipe closes a moment before it can be reaped
                except subprocess.TimeoutExpired:
                    code = None
                self.kill()
                why = _exit(code) if code is not None else f"{type(e).__name__}"
                raise WorkerError(f"HDF5 crashed reading it ({why})", crashed=True) from None


def _exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


CLIENT = Client()

if __name__ == "__main__":
    serve()
