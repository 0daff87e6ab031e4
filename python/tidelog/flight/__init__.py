"""Arrow Flight: a log's topics served to any Flight client (pyarrow, Java,
Go, Rust, C++), ``tidelog serve DIR --flight HOST:PORT``.

Contract:

* **DoGet streams a scan.** The ticket is versioned JSON (``ticket()`` builds
  it; docs/guide/flight.md documents it) naming a topic and the arguments of
  ``topic.scan``: partitions, start/end offsets (an int or one per
  partition), start/end times, columns, ``with_offsets``, ``on_corrupt``
  and a row filter (a ``pyarrow.compute.Expression`` sent as base64
  Substrait; its columns named again where that is exact, so the scan skips
  frames as it does in-process: ``_substrait``). The stream
  holds exactly the rows ``topic.read`` returns for the same arguments, in
  the same order, as the record batches the scan yields: views of the log's
  memory mapping, one frame at a time, read a few batches ahead (ReadAhead),
  never gathered (memory stays bounded by gRPC's flow control whatever the
  range). The end of each partition is fixed when the call starts. A ticket
  is checked before anything is read.
* **DoPut appends durably, batch by batch.** The descriptor is the path
  ``[topic]``. The stream's schema must be the topic's, or have its column
  names with types that cast to it (the rule of ``topic.append`` for data
  from other libraries); otherwise the call fails before anything is
  written. Each batch is one ``topic.append`` (its rows get consecutive
  offsets per partition, batches in stream order), and one PutResult per
  batch, in order, is sent only once an fdatasync that began after the
  batch was written has returned, whatever the topic's durability mode
  (the batches that arrive during one fdatasync share the next); its app
  metadata is JSON ``{"batch": i, "rows": n, "offsets": {"partition":
  [first, last]}}``.
  A batch that fails (values that do not cast, nulls in a non-null column,
  more than ``max_batch_bytes``) ends the stream with an error: nothing of
  it is written, the batches before it stay acknowledged and durable.
* **ListFlights / GetFlightInfo**: one FlightInfo per topic (schema, offsets
  as total_records, bytes on disk as total_bytes, per-partition start/end
  offsets and the topic's settings as JSON app metadata) with one endpoint
  whose ticket reads the topic as it is at that moment. A command
  descriptor holding a ticket describes that read (its schema).
* **DoAction**: ``flush`` (every append durable) and ``describe`` (body: a
  topic name; the JSON of ``topic.describe()``); ListActions lists them.
* **Errors** leave the server serving and write nothing. Every refusal is
  a Flight error whose message starts with the tidelog error's name and
  whose ``extra_info`` is that name: ``FlightServerError`` for a refused
  request (a malformed ticket: ``TicketError``; an unknown topic:
  ``UnknownTopicError``; an unknown column, a bad filter:
  ``InvalidArgumentError`` or ``ValueError``; data that does not fit the
  topic: ``SchemaMismatchError``; an oversized batch), a missing or wrong
  token ``FlightUnauthenticatedError``, a write to a read-only server
  ``FlightUnauthorizedError``, a stop in progress ``FlightUnavailableError``,
  a fault of the server ``FlightInternalError``. (Other exceptions would
  reach clients with the server's Python traceback in their message.)
* **Security.** A token (``authorization: Bearer <token>`` on every call,
  compared in constant time) and TLS are optional; a server refuses to bind
  an address other than loopback without a token unless told
  ``insecure_bind=True``.
* **Shutdown.** ``FlightServer.close()`` (and ``serve()`` on SIGTERM or
  SIGINT) refuses new calls, ends streams at their next batch, flushes the
  log and closes it if the server opened it.

The server uses only the core's public API (``Log``, ``Topic.scan``,
``Topic.append``, ``describe``, ``flush``); tidelog's own time parsing
(``_arrow.to_ns``) turns ticket times into nanoseconds.
"""
from ._client import call_options, decode_put_result, descriptor
from ._serve import DEFAULT_SHUTDOWN_GRACE_S, serve
from ._server import ACTIONS, DEFAULT_LOCATION, DEFAULT_MAX_BATCH_BYTES, FlightServer, is_loopback, parse_location
from ._ticket import TICKET_FIELDS, TICKET_VERSION, TicketError, ticket, ticket_json

__all__ = ["ACTIONS", "DEFAULT_LOCATION", "DEFAULT_MAX_BATCH_BYTES", "DEFAULT_SHUTDOWN_GRACE_S", "FlightServer",
           "TICKET_FIELDS", "TICKET_VERSION", "TicketError", "call_options", "decode_put_result", "descriptor",
           "is_loopback", "parse_location", "serve", "ticket", "ticket_json"]
