# DurableTable (native/durable_table.h) and OfdLock (native/ofd_lock_file.h).
# Included by _core.pyx.
from posix.unistd cimport usleep


cdef inline string_view _bytes_view(object b, str what) except *:
    if not isinstance(b, bytes):
        raise TypeError(f"a durable table {what} must be bytes, not {type(b).__name__}")
    return string_view(PyBytes_AS_STRING(b), <size_t>PyBytes_GET_SIZE(b))


cdef class DurableTable:
    """A small durable key -> value table in a folder (FORMAT.md, "Durable
    tables"), shared by threads and processes: each opens its own handle (one
    handle is not thread-safe). ``lock()`` excludes every other handle;
    ``refresh()`` (under the lock) catches up with what others put; ``get`` and
    ``items`` read this handle's view as of its last refresh; ``put`` (under the
    lock) appends one atomic record and returns a token that ``sync`` (lock not
    needed) makes durable. ``change_counter`` is a lock-free check for "did any
    handle put since I last looked"."""
    cdef unique_ptr[CDurableTable] t
    cdef readonly str path
    cdef int _busy  # calls running without the GIL: close() must wait for them

    def __cinit__(self, str path, bint create=True):
        cdef string p = path.encode("utf-8", "surrogateescape")
        self.path = path
        with nogil:
            self.t.reset(new CDurableTable(p, create))

    cdef CDurableTable* _get(self) except NULL:
        if not self.t or not self.t.get().is_open():
            raise LogClosedError(f"the durable table {self.path} is closed")
        return self.t.get()

    def lock(self, timeout=None):
        """Takes the table lock (GIL released while waiting); True once held,
        False when ``timeout`` (seconds) passed first. With ``timeout=None`` the
        wait blocks in the kernel and a signal (Ctrl-C) ends it with its exception."""
        cdef CDurableTable* t = self._get()
        cdef bint got
        cdef double deadline
        cdef unsigned int pause_us = 20
        self._busy += 1
        try:
            if timeout is None:
                with nogil:
                    t.lock(signal_raised, NULL)
                return True
            deadline = _monotonic() + max(float(timeout), 0.0)
            while True:
                with nogil:
                    got = t.try_lock()
                if got:
                    return True
                if _monotonic() >= deadline:
                    return False
                with nogil:
                    usleep(pause_us)
                pause_us = min(pause_us * 2, 2000)
                PyErr_CheckSignals()
        finally:
            self._busy -= 1

    def unlock(self):
        self._get().unlock()

    @property
    def locked(self):
        """Whether this handle holds the table lock."""
        return self._get().locked()

    def refresh(self):
        """Under the lock: applies what other handles put, re-reads the journal
        after a rewrite, cuts a torn tail (a holder that died mid-put). Raises
        CorruptionError (``path``, ``position``) for damage later records prove
        was durable."""
        cdef CDurableTable* t = self._get()
        self._busy += 1
        try:
            with nogil:
                t.refresh()
        finally:
            self._busy -= 1

    def get(self, key):
        """The value of ``key`` (bytes) in this handle's view, or None."""
        cdef CDurableTable* t = self._get()
        cdef string_view k = _bytes_view(key, "key")
        cdef const string* v = t.get(k)
        if v == NULL:
            return None
        return PyBytes_FromStringAndSize(v.data(), <Py_ssize_t>v.size())

    def items(self, prefix=b""):
        """[(key, value)] of every key starting with ``prefix``, in key order."""
        cdef CDurableTable* t = self._get()
        cdef string_view p = _bytes_view(prefix, "prefix")
        cdef vector[pair[string, string]] got = t.items(p)
        cdef list out = []
        cdef size_t i
        for i in range(got.size()):
            out.append((PyBytes_FromStringAndSize(got[i].first.data(), <Py_ssize_t>got[i].first.size()),
                        PyBytes_FromStringAndSize(got[i].second.data(), <Py_ssize_t>got[i].second.size())))
        return out

    def put(self, changes):
        """Under the lock: applies ``changes`` ([(key, value or None to delete)],
        bytes) as one atomic record; returns the token for ``sync``."""
        cdef CDurableTable* t = self._get()
        cdef vector[pair[string_view, optional_view]] views
        cdef list keep = list(changes)  # holds the bytes while the GIL is released
        cdef CTableSyncToken token
        cdef string_view k
        views.reserve(len(keep))
        for change in keep:
            key, value = change
            k = _bytes_view(key, "key")
            if value is None:
                views.push_back(pair[string_view, optional_view](k, optional_view()))
            else:
                views.push_back(pair[string_view, optional_view](k, optional_view(_bytes_view(value, "value"))))
        self._busy += 1
        try:
            with nogil:
                token = t.put(views)
        finally:
            self._busy -= 1
        return (token.generation, token.end)

    def sync(self, token):
        """Makes the put behind ``token`` durable (GIL released): fdatasync,
        unless another handle's sync already covered it. The lock is not needed."""
        cdef CDurableTable* t = self._get()
        cdef CTableSyncToken tk
        tk.generation, tk.end = token
        self._busy += 1
        try:
            with nogil:
                t.sync(tk)
        finally:
            self._busy -= 1

    def rewrite(self):
        """Under the lock: rewrites the journal to the live keys now (puts do it
        by themselves when it outgrows max(1 MiB, 4x the live data))."""
        cdef CDurableTable* t = self._get()
        self._busy += 1
        try:
            with nogil:
                t.rewrite()
        finally:
            self._busy -= 1

    @property
    def change_counter(self):
        """Changes whenever any handle puts (one atomic load: no system call)."""
        return self._get().change_counter()

    @property
    def generation(self):
        """The journal generation this handle reads (moves with every rewrite)."""
        return self._get().generation()

    @property
    def journal_bytes(self):
        return self._get().journal_bytes()

    def __len__(self):
        return self._get().size()

    def close(self):
        """Closes the handle (releasing the lock if held). Idempotent."""
        if self._busy:
            raise InvalidArgumentError("the durable table is in use by another thread")
        if self.t:
            self.t.get().close()
            self.t.reset()

    def close_after_fork(self):
        """Closes a forked child's copy of the handle. The child has no other
        thread, so a call its parent had running without the GIL (``_busy``) is
        not running here; close() would refuse it, and the child would keep the
        parent's open file descriptions, hence its locks, alive."""
        self._busy = 0
        self.close()

    def __enter__(self):
        self.lock()
        return self

    def __exit__(self, exc_type, exc, tb):
        if self.t and self.t.get().is_open() and self.t.get().locked():
            self.t.get().unlock()
        return False


cdef class OfdLock:
    """A file opened (created when missing) only to carry byte locks owned by
    this open (OFD locks): they exclude every other open of the file, in this
    process or another, and the kernel releases them when the holder dies. Byte
    n of a members file, for instance, is member slot n's liveness lock."""
    cdef unique_ptr[COfdLockFile] f
    cdef readonly str path

    def __cinit__(self, str path):
        cdef string p = path.encode("utf-8", "surrogateescape")
        self.path = path
        with nogil:
            self.f.reset(new COfdLockFile(p))

    cdef COfdLockFile* _get(self) except NULL:
        if not self.f or not self.f.get().is_open():
            raise LogClosedError(f"the lock file {self.path} is closed")
        return self.f.get()

    def lock(self, uint64_t byte, bint exclusive=True, bint wait=False):
        """Locks [byte, byte + 1) (or converts this open's lock there); False
        only when ``wait`` is False and another open holds a conflicting lock."""
        cdef COfdLockFile* f = self._get()
        cdef bint got
        if not wait:  # one non-blocking fcntl: no wait, so the GIL stays
            return f.lock(byte, exclusive, False)
        with nogil:
            got = f.lock(byte, exclusive, wait)
        return got

    def unlock(self, uint64_t byte):
        self._get().unlock(byte)

    def locked_elsewhere(self, uint64_t byte):
        """Whether another open holds a lock on the byte (this open's do not count)."""
        return self._get().locked_elsewhere(byte)

    def fileno(self):
        return self._get().fd()

    def close(self):
        """Closes the file, releasing every lock of this open. Idempotent."""
        if self.f:
            self.f.get().close()
            self.f.reset()
