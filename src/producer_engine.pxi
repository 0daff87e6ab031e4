# The interface between the Cython producer and its engine, included by
# _core.pyx. Producer.send(), DeliveryFuture and ProducerBatch call the engine
# only through these declared methods (C-level vtable calls; a Python subclass's
# overrides are found by Cython's cpdef dispatch), never through attribute
# lookups on an untyped object. The flow is one way: the producer accumulates
# records into batches and hands sealed batches to the engine, which appends
# them and settles their futures (as librdkafka's and aiokafka's accumulator
# hand batches to their sender).
#
# tidelog._producer.ProducerEngine implements it; the methods here only say
# what each must do. Thread-safety: every method may be called from any thread
# holding the GIL; implementations lock what they share.


cdef class ProducerEngineBase:
    """What a producer needs from its engine (see tidelog._producer.ProducerEngine)."""
    # metadata(topic, partition, offset, timestamp) -> what DeliveryFuture.result() returns.
    cdef public object metadata
    # to_ns(value) -> int nanoseconds for a timestamp that is not an int (raises ValueError/TypeError).
    cdef public object to_ns
    # Records a new batch reserves room for (the engine refines it from sealed batches).
    cdef public Py_ssize_t batch_records

    # ------------------------------------------------ called by Producer.send()
    cpdef ProducerTopic topic_state(self, str name):
        """The ProducerTopic of topic ``name``; UnknownTopicError if there is none."""
        raise NotImplementedError

    cpdef lingering(self, ProducerBatch batch):
        """The producer opened ``batch`` (linger_ms > 0; its deadline is set):
        seal and append it once the deadline passes, if nothing sealed it before."""
        raise NotImplementedError

    cpdef seal(self, ProducerTopic st, int partition, ProducerBatch batch):
        """``batch`` is full: seal it (take_open_batch) and append it."""
        raise NotImplementedError

    cpdef seal_soon(self, ProducerTopic st, int partition, ProducerBatch batch):
        """linger_ms=0: seal and append ``batch`` now, or once the partition's
        batch in flight is durable."""
        raise NotImplementedError

    cpdef warn_timestamp(self, int64_t ts):
        """An int timestamp outside 1980..2200: warn (TimestampWarning)."""
        raise NotImplementedError

    # ------------------------------------ called for batches send() appended itself
    cpdef track_direct(self, ProducerBatch batch):
        """An appended batch the engine must now make durable and count for flush()."""
        raise NotImplementedError

    cpdef finish(self, list batches, int state, error=None):
        """Settles ``batches`` not settled yet as BATCH_DONE or BATCH_FAILED
        (with ``error``): queues their delivery callbacks, wakes waiters."""
        raise NotImplementedError

    # ------------------------------------------------ called by DeliveryFuture
    cpdef wait_batch(self, ProducerBatch batch, timeout):
        """Blocks until ``batch`` is settled; TimeoutError after ``timeout`` seconds (None: no limit)."""
        raise NotImplementedError

    cpdef add_done_callback(self, ProducerBatch batch, DeliveryFuture future, fn):
        """Calls fn(future) once ``batch`` is settled (at once if it is)."""
        raise NotImplementedError

    # ------------------------------------------------ the rest of Producer's API
    cpdef send_many(self, ProducerTopic st, values, keys, headers, partition):
        raise NotImplementedError

    cpdef flush(self, timeout=None):
        """Appends every open batch, waits for acks, runs callbacks; returns how many ran."""
        raise NotImplementedError

    cpdef poll(self, timeout=0):
        """Runs the delivery callbacks ready so far; returns how many."""
        raise NotImplementedError

    cpdef abort(self, error):
        """Fails every record not delivered yet with ``error``."""
        raise NotImplementedError

    cpdef close(self):
        """Stops the engine's background thread."""
        raise NotImplementedError
