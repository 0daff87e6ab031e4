"""Client-side helpers: what a ``pyarrow.flight.FlightClient`` passes to a
tidelog Flight server, and what it reads back."""
from __future__ import annotations

import json

import pyarrow.flight as flight


def descriptor(topic: str) -> flight.FlightDescriptor:
    """The descriptor of a topic: a path of one element, its name (DoPut,
    GetFlightInfo, GetSchema)."""
    if not isinstance(topic, str):
        raise TypeError(f"topic must be a topic name (str), not {type(topic).__name__}")
    return flight.FlightDescriptor.for_path(topic)


def call_options(token: str | None = None, *, timeout: float | None = None) -> flight.FlightCallOptions:
    """``FlightCallOptions`` that send ``authorization: Bearer <token>`` (the
    server's ``--token``), with an optional per-call ``timeout`` in seconds."""
    headers = [(b"authorization", f"Bearer {token}".encode())] if token is not None else []
    return flight.FlightCallOptions(headers=headers, timeout=timeout)


def decode_put_result(buffer) -> dict:
    """A DoPut acknowledgement (what ``metadata_reader.read()`` returns) as a
    dict: ``{"batch": i, "rows": n, "offsets": {partition: (first, last)}}``
    with int partitions, as ``AppendResult.offsets``. ``None`` (what
    ``read()`` returns once the stream ended: the server refused a batch) is
    an EOFError: ``writer.close()`` raises the server's error."""
    if buffer is None:
        raise EOFError("no acknowledgement: the server ended the stream; writer.close() raises its error")
    doc = json.loads(bytes(buffer))
    doc["offsets"] = {int(p): (first, last) for p, (first, last) in doc["offsets"].items()}
    return doc
