"""LMDB (the ``lmdb`` package): per-record puts in transactions, for the
per-record workloads. One class, no change to any workload."""
from __future__ import annotations

import itertools
import os
import time

from ..core import MiB, Contender, rmtree, run_threads
from ._common import crash_writer_if_asked, fill_recovery_store, store_dir

MAP_SIZE = 1 << 37     # address space only: the file grows as pages are used


class Lmdb(Contender):
    kind = "peer"
    requires = ("lmdb",)

    def __init__(self, sync: bool = True):
        self.sync = sync
        self.name = "lmdb" if sync else "lmdb nosync"
        self.description = ("lmdb: txn.put per record (8-byte big-endian sequence keys, append=True), one write "
                            "transaction per round; " + ("sync=True: every commit fsyncs" if sync else
                                                          "sync=False: commits stay in the page cache"))

    def _env(self, path: str):
        import lmdb

        return lmdb.open(path, map_size=MAP_SIZE, sync=self.sync, metasync=self.sync, max_dbs=0)

    def _open(self, tmpdir: str):
        self.dir = store_dir(tmpdir, self.name)
        self.env = self._env(self.dir)
        self.seq = itertools.count()
        return self.env

    def _close(self):
        self.env.close()
        rmtree(self.dir)

    # ------------------------------------------------------------ produce
    def produce_supports(self, params):
        return self.sync == bool(params["durable"])

    def produce_setup(self, tmpdir, params, data):
        self._open(tmpdir)
        self.values = data.values

    def produce_run(self, case):
        seq = self.seq
        t0 = time.perf_counter()
        with self.env.begin(write=True) as txn:
            put = txn.put
            for v in self.values:
                put(next(seq).to_bytes(8, "big"), v, append=True)
        return {"seconds": time.perf_counter() - t0, "records": len(self.values)}

    def produce_teardown(self):
        self._close()

    # ------------------------------------------------------------ threads
    def threads_supports(self, params):
        return self.sync

    def threads_setup(self, tmpdir, params, data):
        self._open(tmpdir)
        self.data = data

    def _thread_op(self, k: int):
        env, seq, mine = self.env, self.seq, self.data.values[k * self.data.per_thread:]

        def op(i):
            with env.begin(write=True) as txn:      # LMDB runs one write transaction at a time
                txn.put(next(seq).to_bytes(8, "big"), mine[i])
        return op

    def threads_run(self, case):
        return run_threads(self.data.threads, self.data.per_thread, self._thread_op)

    def threads_teardown(self):
        self._close()

    # ----------------------------------------------------------- recovery
    def recovery_supports(self, params):
        return self.sync and not params.get("columnar")

    def recovery_writer(self, path, size, value_bytes, keep_writing, ready):
        from ..core import make_values

        env = self._env(path)
        values = make_values(max(1, MiB // value_bytes), value_bytes, seed=1)
        n = env.stat()["entries"]

        def txn_of(vals):
            nonlocal n
            with env.begin(write=True) as txn:
                for v in vals:
                    txn.put(n.to_bytes(8, "big"), v, append=True)
                    n += 1

        data_file = os.path.join(path, "data.mdb")
        while os.path.getsize(data_file) < size:
            txn_of(values)
        txn_of(values[:16])
        ready()
        while keep_writing:
            txn_of(values[:16])
        env.close()

    def recovery_setup(self, tmpdir, params, data):
        self.data = data
        self.dir = fill_recovery_store(self, tmpdir, data)

    def recovery_run(self, case):
        crash_writer_if_asked(self, case, self.dir, self.data)
        t0 = time.perf_counter()
        env = self._env(self.dir)
        env.stat()
        seconds = time.perf_counter() - t0
        env.close()
        return {"seconds": seconds}

    def recovery_teardown(self):
        rmtree(self.dir)
