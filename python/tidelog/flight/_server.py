"""The Flight server: ``FlightServer`` (a ``pyarrow.flight.FlightServerBase``)
over one tidelog log. See the package docstring for the contract."""
from __future__ import annotations

import fnmatch
import hmac
import ipaddress
import json
import logging
import socket
import threading
from typing import Any, Iterator
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.flight as flight

from .. import _log
from ..errors import (InvalidArgumentError, ReadOnlyError, SchemaMismatchError, TidelogError, TidelogIOError,
                      UnknownTopicError)
from ._get import ReadAhead
from ._put import AppendPipeline
from ._ticket import Request, TicketError, decode_filter, ticket_json

logger = logging.getLogger("tidelog.flight")

DEFAULT_LOCATION = "grpc://127.0.0.1:8815"
#: The largest record batch a DoPut stream may send (configurable): a batch is
#: held in memory whole, then written and acknowledged as one append.
DEFAULT_MAX_BATCH_BYTES = 64 << 20

#: The actions of DoAction: name -> what ListActions says about it.
ACTIONS = {
    "flush": "make every append so far durable (all topics); body: empty. Result: {\"flushed\": true}",
    "describe": "a topic's partitions, offsets, bytes, configuration and schema as JSON; body: the topic name",
}


class _BearerTokenFactory(flight.ServerMiddlewareFactory):
    """Refuses every call whose ``authorization`` header is not ``Bearer <token>``."""

    def __init__(self, token: str):
        super().__init__()
        self._expected = f"Bearer {token}".encode()

    def start_call(self, info, headers):
        for value in headers.get("authorization", []):
            given = value if isinstance(value, bytes) else value.encode()
            if hmac.compare_digest(given, self._expected):
                return None
        raise flight.FlightUnauthenticatedError(
            "this tidelog Flight server needs a token: send the header 'authorization: Bearer <token>' "
            "(FlightCallOptions(headers=[(b'authorization', b'Bearer ' + token)]), or "
            "tidelog.flight.call_options(token))")


def _flight_error(e: BaseException, context: str = "") -> Exception:
    """The Flight error a client gets for ``e``, raised by a handler. Flight
    errors carry a clean message (other exceptions would reach the client with
    the server's Python traceback appended): a missing or wrong token is
    ``FlightUnauthenticatedError``, a write to a read-only server
    ``FlightUnauthorizedError``, a stop in progress ``FlightUnavailableError``,
    a refused request (a bad ticket, an unknown topic or column, data that does
    not fit, damaged data) ``FlightServerError``, a fault of the server itself
    ``FlightInternalError`` (also logged with its traceback). The message starts with the tidelog
    error's name, and ``extra_info`` is that name (``b"UnknownTopicError"``,
    ``b"TicketError"``, ``b"SchemaMismatchError"``, ...) for code that branches
    on it. ``context`` goes between the name and the message."""
    if isinstance(e, flight.FlightError):
        return e  # type: ignore[return-value]
    name = type(e).__name__
    text = f"{name}: {context}{e}"
    if isinstance(e, ReadOnlyError):
        return flight.FlightUnauthorizedError(text, extra_info=name.encode())
    if not isinstance(e, (TidelogError, ValueError, TypeError, KeyError, pa.ArrowException)):
        # not an answer to the request: a fault of the server, for its operator's log
        logger.error("tidelog flight: a call failed", exc_info=e)
        return flight.FlightInternalError(text, extra_info=name.encode())
    return flight.FlightServerError(text, extra_info=name.encode())


def parse_location(location: Any, tls: bool) -> tuple[str, int, str]:
    """(host, port, URI) of ``location``: ``"grpc://host:port"``,
    ``"grpc+tls://host:port"``, ``"host:port"`` (``"[::1]:8815"``) or a
    ``(host, port)`` tuple; the scheme follows ``tls``."""
    if isinstance(location, tuple) and len(location) == 2:
        host, port = location
    elif isinstance(location, str):
        text = location if "://" in location else f"grpc://{location}"
        parts = urlsplit(text)
        if parts.scheme not in ("grpc", "grpc+tcp", "grpc+tls"):
            raise InvalidArgumentError(f"location {location!r}: the scheme must be grpc:// or grpc+tls://")
        if parts.scheme == "grpc+tls" and not tls:
            raise InvalidArgumentError(f"location {location!r} asks for TLS: give tls_certificates=[(cert, key)]")
        try:
            host, port = parts.hostname, parts.port
        except ValueError:
            host, port = None, None
        if parts.path not in ("", "/") or parts.query:
            host = None
    else:
        raise InvalidArgumentError(f"location must be 'grpc://host:port', 'host:port' or (host, port), "
                                   f"not {location!r}")
    if not isinstance(host, str) or not host or type(port) is not int or not 0 <= port <= 65535:
        raise InvalidArgumentError(f"location {location!r} must name a host and a port (0-65535), as "
                                   f"'127.0.0.1:8815'")
    shown = f"[{host}]" if ":" in host else host
    return host, port, f"{'grpc+tls' if tls else 'grpc'}://{shown}:{port}"


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` stands for is a loopback address
    (127.0.0.0/8, ::1): only processes of this machine can connect."""
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback for info in infos)


class FlightServer(flight.FlightServerBase):
    """An Arrow Flight server over a tidelog log. It serves from the moment it
    is made; ``serve()`` blocks until ``close()`` (or use ``tidelog.flight.serve``,
    which also stops on SIGTERM/SIGINT).

    ``log_or_path``: a ``tidelog.Log`` (the caller keeps owning it) or a
    folder, which the server opens (read-only with ``read_only=True``) and
    closes. ``location``: ``"grpc://host:port"`` (port 0: any free port;
    ``location`` then says which). ``token``: every call must carry
    ``authorization: Bearer <token>``. ``tls_certificates``: ``[(cert_pem,
    key_pem)]`` serves over TLS (``grpc+tls://``). A host that is not a
    loopback address is refused without a token unless ``insecure_bind=True``:
    a Flight server without one lets anyone who reaches the port read every
    topic and append to it. ``max_batch_bytes``: the largest record batch a
    DoPut takes (larger ones are refused, nothing of them written).
    """

    def __init__(self, log_or_path: Any, location: Any = DEFAULT_LOCATION, *, token: str | None = None,
                 tls_certificates: list[tuple[bytes, bytes]] | None = None, read_only: bool = False,
                 insecure_bind: bool = False, max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES):
        if token is not None and (not isinstance(token, str) or not token or token != token.strip()):
            raise InvalidArgumentError("token must be a non-empty str without surrounding white space")
        if type(max_batch_bytes) is not int or max_batch_bytes < 1:
            raise InvalidArgumentError(f"max_batch_bytes must be a positive int, not {max_batch_bytes!r}")
        host, port, uri = parse_location(location, bool(tls_certificates))
        if token is None and not insecure_bind and not is_loopback(host):
            raise InvalidArgumentError(
                f"refusing to serve on {host!r} without a token: anyone who can reach it could read and append "
                f"to every topic. Give a token (and TLS), bind 127.0.0.1, or pass insecure_bind=True "
                f"(--insecure-bind) on a network you trust")
        if token is not None and not tls_certificates and not is_loopback(host):
            logger.warning("tidelog flight: the token travels in clear text on %s: add TLS certificates", host)
        self._owns_log = not isinstance(log_or_path, _log.Log)
        self.log = _log.open(log_or_path, read_only=read_only) if self._owns_log else log_or_path
        self.max_batch_bytes = max_batch_bytes
        self._topics_lock = threading.Lock()  # Log.topic() may load a topic: one thread at a time
        self._stopping = threading.Event()
        self._closed = False
        middleware = {"auth": _BearerTokenFactory(token)} if token is not None else None
        try:
            super().__init__(uri, tls_certificates=tls_certificates, middleware=middleware)
        except BaseException as e:
            if self._owns_log:
                self.log.close()
            if isinstance(e, pa.ArrowException):
                raise TidelogIOError(f"cannot serve on {uri}: is the port taken (by another server), or {host!r} "
                                     f"not an address of this machine? ({str(e).splitlines()[0]})") from None
            raise
        shown = f"[{host}]" if ":" in host else host
        #: The URI clients connect to (with the port bound, when 0 was asked).
        self.location = f"{uri.split('://')[0]}://{shown}:{self.port}"

    # ------------------------------------------------------------ lifecycle
    def close(self) -> None:
        """Stops serving: new calls are refused, streams in progress end at
        their next batch (a DoPut's batches acknowledged so far stay
        acknowledged), then the log is flushed and, if the server opened it,
        closed. Blocks until calls in progress have ended. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        self.shutdown()
        if not self.log.read_only:
            self.log.flush()
        if self._owns_log:
            self.log.close()

    def __enter__(self) -> "FlightServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _topic(self, name: Any):
        if not isinstance(name, str):
            raise TicketError(f"a topic name is a string, not {type(name).__name__}")
        with self._topics_lock:
            return self.log.topic(name)

    def _check_running(self, what: str) -> None:
        if self._stopping.is_set():
            raise flight.FlightUnavailableError(f"the server is shutting down; {what}")

    # ---------------------------------------------------------------- reads
    def _scan(self, request: Request):
        topic = self._topic(request.topic)
        row_filter = None if request.filter is None else decode_filter(request.filter, topic.schema)
        return topic.scan(**request.scan, filter=row_filter)

    def do_get(self, context, ticket):
        try:
            scan = self._scan(Request.parse(ticket.ticket))
        except Exception as e:  # noqa: BLE001 - every failure goes back as a Flight error
            raise _flight_error(e) from None
        return flight.GeneratorStream(scan.schema, self._stream(scan))

    def _stream(self, scan) -> Iterator[pa.RecordBatch]:
        """The scan's batches as they are read (views of the log's mapping,
        one frame at a time, read a few batches ahead: gRPC's flow control
        paces the reading). The reader starts with the first batch asked for."""
        batches = ReadAhead(scan, scan.topic.name)
        sent = 0
        try:
            for batch in batches:
                self._check_running(f"the stream ended after {sent} batches")
                yield batch
                sent += 1
        except GeneratorExit:
            raise
        except Exception as e:  # noqa: BLE001 - the stream ends with a Flight error
            raise _flight_error(e) from None
        finally:
            batches.close()

    def _info(self, topic, descriptor) -> flight.FlightInfo:
        d = topic.describe()
        ends = {str(p["partition"]): p["end_offset"] for p in d["partitions"]}
        meta = {"topic": topic.name,
                "partitions": [{k: p[k] for k in ("partition", "start_offset", "end_offset", "bytes")}
                               for p in d["partitions"]],
                **{k: d["config"][k] for k in ("key", "timestamp", "durability", "compression",
                                                "cleanup_policy")}}
        # Reads what the topic holds now (its end offsets fixed), as total_records says.
        whole = flight.Ticket(ticket_json(topic.name, end_offset={int(p): e for p, e in ends.items()}))
        return flight.FlightInfo(topic.schema, descriptor, [flight.FlightEndpoint(whole, [])],
                                 total_records=d["records"], total_bytes=d["bytes"], ordered=False,
                                 app_metadata=json.dumps(meta, separators=(",", ":")).encode())

    def list_flights(self, context, criteria):
        """One FlightInfo per topic; ``criteria``, if given, is a glob pattern
        of topic names (``b"sensors*"``)."""
        try:
            pattern = bytes(criteria).decode() if criteria else "*"
            with self._topics_lock:
                names = self.log.topics()
            infos = []
            for name in names:
                if fnmatch.fnmatchcase(name, pattern):
                    try:
                        infos.append(self._info(self._topic(name), flight.FlightDescriptor.for_path(name)))
                    except UnknownTopicError:
                        continue  # deleted meanwhile
        except Exception as e:  # noqa: BLE001
            raise _flight_error(e) from None
        return iter(infos)

    def get_flight_info(self, context, descriptor):
        """A path descriptor ``[topic]``: the topic (as ``list_flights``); a
        command descriptor holding a ticket: that read's schema, and an
        endpoint with the ticket."""
        try:
            if descriptor.descriptor_type == flight.DescriptorType.PATH:
                return self._info(self._topic(self._path_topic(descriptor)), descriptor)
            request = Request.parse(descriptor.command)
            scan = self._scan(request)
            return flight.FlightInfo(scan.schema, descriptor,
                                     [flight.FlightEndpoint(flight.Ticket(descriptor.command), [])])
        except Exception as e:  # noqa: BLE001
            raise _flight_error(e) from None

    def get_schema(self, context, descriptor):
        return flight.SchemaResult(self.get_flight_info(context, descriptor).schema)

    @staticmethod
    def _path_topic(descriptor) -> str:
        if descriptor.descriptor_type != flight.DescriptorType.PATH or len(descriptor.path) != 1:
            raise TicketError("the descriptor must be a path of one element, the topic name "
                              "(FlightDescriptor.for_path('sensors'))")
        try:
            return bytes(descriptor.path[0]).decode()
        except UnicodeDecodeError:
            raise TicketError("the topic name in the descriptor is not UTF-8") from None

    # --------------------------------------------------------------- writes
    def do_put(self, context, descriptor, reader, writer):
        """Appends every batch of the stream, in order, and sends one
        PutResult per batch once it is durable (JSON: batch, rows, offsets;
        see AppendPipeline)."""
        try:
            topic = self._topic(self._path_topic(descriptor))
            if self.log.read_only:
                raise ReadOnlyError("this server opened its log read-only: it takes no DoPut")
            target = topic.schema
            cast = incoming_cast(reader.schema, target, topic.name)
        except Exception as e:  # noqa: BLE001
            raise _flight_error(e) from None
        pipeline = AppendPipeline(topic, writer)
        index = 0
        try:
            try:
                while True:
                    try:
                        batch, _ = reader.read_chunk()
                    except StopIteration:
                        break
                    if batch is None:  # metadata alone: nothing to append
                        continue
                    self._check_running(f"the batches before batch {index} were acknowledged, nothing after")
                    size = batch.get_total_buffer_size()
                    if size > self.max_batch_bytes:
                        raise InvalidArgumentError(
                            f"batch {index} of the stream holds {size} bytes ({batch.num_rows} rows), more than "
                            f"this server takes in one batch ({self.max_batch_bytes} bytes, --max-batch-bytes): "
                            f"send smaller batches. Nothing of this batch was written; the {index} batches "
                            f"before it were acknowledged")
                    if cast:
                        batch = _cast(batch, target, index)
                    pipeline.put(index, batch)
                    index += 1
            finally:
                # whatever ends the stream, the batches handed over are made durable and acknowledged first
                pipeline.finish()
        except Exception as e:  # noqa: BLE001
            if e is pipeline.error and pipeline.failed_batch is not None:
                raise _flight_error(e, f"batch {pipeline.failed_batch} of the stream was refused (nothing of it "
                                       f"was written; the batches before it were acknowledged): ") from None
            raise _flight_error(e) from None

    # -------------------------------------------------------------- actions
    def list_actions(self, context):
        return [flight.ActionType(name, description) for name, description in ACTIONS.items()]

    def do_action(self, context, action):
        try:
            if action.type == "flush":
                if self.log.read_only:
                    raise ReadOnlyError("this server opened its log read-only: there is nothing to flush")
                self.log.flush()
                out: dict = {"flushed": True}
            elif action.type == "describe":
                body = action.body.to_pybytes() if action.body is not None else b""
                try:
                    name = body.decode()
                except UnicodeDecodeError:
                    raise TicketError("the describe action's body is a topic name (UTF-8)") from None
                out = self._topic(name).describe()
            else:
                raise InvalidArgumentError(f"unknown action {action.type!r}; the actions are {list(ACTIONS)}")
        except Exception as e:  # noqa: BLE001
            raise _flight_error(e) from None
        return iter([flight.Result(json.dumps(out, default=str, separators=(",", ":")).encode())])


def incoming_cast(given: pa.Schema, target: pa.Schema, topic: str) -> bool:
    """Whether a DoPut stream of schema ``given`` needs its batches cast to
    the topic's schema ``target`` (False: they are appended as they come);
    SchemaMismatchError, before anything is read, when they cannot be. The
    rule of ``topic.append`` for data from other libraries: the same column
    names in the same order, each type castable to the topic's (large or
    view strings, another integer width, ...); the values are checked as each
    batch is cast."""
    if given.equals(target, check_metadata=False):
        return False
    if given.names != target.names:
        raise SchemaMismatchError(f"the stream's columns {given.names} are not topic {topic!r}'s "
                                  f"{target.names}; nothing was written")
    refused = []
    for g, f in zip(given, target):
        if g.type.equals(f.type):
            continue
        try:
            pa.array([], type=g.type).cast(f.type)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
            refused.append(f"{g.name}: {g.type} cannot become {f.type}")
    if refused:
        raise SchemaMismatchError(f"the stream does not fit topic {topic!r}: {'; '.join(refused)}; nothing "
                                  f"was written")
    return True


def _cast(batch: pa.RecordBatch, target: pa.Schema, index: int) -> pa.RecordBatch:
    try:
        return batch.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError) as e:
        raise SchemaMismatchError(f"batch {index} of the stream does not fit the topic's schema: "
                                  f"{str(e).splitlines()[0]}; nothing of this batch was written, the batches "
                                  f"before it were acknowledged") from None
