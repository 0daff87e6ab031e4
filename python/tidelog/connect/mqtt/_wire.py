"""The subscriber's side of MQTT 3.1.1 on a socket: CONNECT with a persistent
session, SUBSCRIBE at QoS 1, PUBLISH parsed many to a ``recv``, PUBACKs
sent in one ``send`` per batch, PINGREQ for the keep-alive.

Why not paho-mqtt here: paho reads a packet in three ``recv`` calls and
builds an object per message; it drained a broker's queue at about 20-27 k
messages/s on the benchmark machine, where ``mosquitto_sub`` drains 170 k/s.
Parsing a whole ``recv`` buffer at once and acknowledging a batch in one
write is what lets the bridge keep up (docs/BENCHMARKS.md). The reverse
direction (``_publish.py``) uses paho, whose publishing speed is not the
bottleneck there.
"""
from __future__ import annotations

import dataclasses
import select
import socket
import struct
import time
import urllib.parse

from ...errors import BrokerError, InvalidArgumentError

DEFAULT_PORT = 1883
_RECV_BYTES = 1 << 20
_CONNACK_REFUSED = {1: "unacceptable protocol version", 2: "client id rejected", 3: "server unavailable",
                    4: "bad user name or password", 5: "not authorized"}


def _ready(sock, events: int, timeout_s: float) -> bool:
    """Whether ``sock`` is ready for ``events`` within ``timeout_s`` seconds.
    poll(), not select(): select() refuses descriptors >= 1024, which a process
    with many open files (logs, segments, sockets) hands out."""
    poller = select.poll()
    poller.register(sock, events)
    return bool(poller.poll(max(timeout_s, 0.0) * 1000.0))


@dataclasses.dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        return f"mqtt://{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerAddress:
    """``mqtt://[user[:password]@]host[:port]`` (or ``tcp://``, or a bare
    ``host[:port]``); ``InvalidArgumentError`` otherwise."""
    text = url if "://" in url else f"mqtt://{url}"
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("mqtt", "tcp"):
        raise InvalidArgumentError(f"broker {url!r}: only mqtt://host:port is supported (not {parts.scheme}://)")
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise InvalidArgumentError(f"broker {url!r}: the port is not a number from 1 to 65535") from None
    if not parts.hostname or parts.path not in ("", "/"):
        raise InvalidArgumentError(f"broker {url!r}: expected mqtt://host[:port]")
    return BrokerAddress(parts.hostname, port, urllib.parse.unquote(parts.username) if parts.username else None,
                         urllib.parse.unquote(parts.password) if parts.password else None)


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _packet(header: int, body: bytes) -> bytes:
    n = len(body)
    length = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        length.append(byte | (0x80 if n else 0))
        if not n:
            return bytes([header]) + bytes(length) + body


_PUBACK = [b"\x40\x02" + struct.pack("!H", pid) for pid in range(65536)]
_PINGREQ = b"\xc0\x00"
_DISCONNECT = b"\xe0\x00"


class Subscriber:
    """One connection to the broker as a subscriber with a persistent session
    (clean session off: the broker keeps the subscription and the messages
    this client has not acknowledged while it is away, and sends them again)."""

    def __init__(self, address: BrokerAddress, client_id: str, filters: list[str], keepalive: int = 60,
                 connect_timeout: float = 10.0):
        self.address, self.client_id, self.filters, self.keepalive = address, client_id, filters, keepalive
        self.session_present = False
        self._buf = bytearray()
        self._last_send = time.monotonic()
        try:
            self.sock = socket.create_connection((address.host, address.port), timeout=connect_timeout)
        except OSError as e:
            raise BrokerError(f"cannot reach the MQTT broker at {address}: {e.strerror or e}") from None
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._handshake(connect_timeout)
            self.sock.settimeout(None)
            self.sock.setblocking(False)
        except BaseException:
            self.sock.close()
            raise

    # ----------------------------------------------------------- handshake
    def _handshake(self, timeout: float) -> None:
        flags = 0x00  # clean session off: a persistent session
        payload = _string(self.client_id)
        if self.address.username is not None:
            flags |= 0x80
            payload += _string(self.address.username)
            if self.address.password is not None:
                flags |= 0x40
                payload += _string(self.address.password)
        body = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", self.keepalive) + payload
        self._send(_packet(0x10, body))
        kind, body = self._read_control(timeout)
        if kind != 2 or len(body) != 2:
            raise BrokerError(f"the MQTT broker at {self.address} answered CONNECT with packet type {kind}")
        if body[1]:
            why = _CONNACK_REFUSED.get(body[1], f"code {body[1]}")
            raise BrokerError(f"the MQTT broker at {self.address} refused the connection: {why}")
        self.session_present = bool(body[0] & 1)
        topics = b"".join(_string(f) + b"\x01" for f in self.filters)
        self._send(_packet(0x82, struct.pack("!H", 1) + topics))
        kind, body = self._read_control(timeout, keep_publishes=True)
        if kind != 9:
            raise BrokerError(f"the MQTT broker at {self.address} answered SUBSCRIBE with packet type {kind}")
        for f, code in zip(self.filters, body[2:]):
            if code == 0x80:
                raise BrokerError(f"the MQTT broker at {self.address} refused the subscription to {f!r}")

    def _read_control(self, timeout: float, keep_publishes: bool = False) -> tuple[int, bytes]:
        """The next packet that is not a PUBLISH (those stay in the buffer for
        ``read``: a persistent session's messages may come before the SUBACK)."""
        deadline = time.monotonic() + timeout
        pos = 0
        while True:
            got = _next_packet(self._buf, pos)
            if got is not None:
                header, start, end = got
                if header >> 4 == 3 and keep_publishes:
                    pos = end
                    continue
                body = bytes(self._buf[start:end])
                del self._buf[pos:end]
                return header >> 4, body
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrokerError(f"the MQTT broker at {self.address} did not answer within {timeout:g} s")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(_RECV_BYTES)
            except OSError as e:
                raise BrokerError(f"the MQTT broker at {self.address}: {e.strerror or e}") from None
            if not data:
                raise BrokerError(f"the MQTT broker at {self.address} closed the connection")
            self._buf += data

    # ----------------------------------------------------------- messages
    def wait(self, timeout: float) -> bool:
        """True when bytes can be read within ``timeout`` seconds (or some are buffered)."""
        if self._buffered_publish():
            return True
        return _ready(self.sock, select.POLLIN, timeout)

    def _buffered_publish(self) -> bool:
        return _next_packet(self._buf, 0) is not None

    def read(self, into: list, arrival_ns: int) -> int:
        """Reads what the socket has and appends each PUBLISH to ``into`` as
        ``(packet_id, topic, payload, arrival_ns)`` (packet_id 0: QoS 0, no
        acknowledgement due). Returns the bytes read; raises ``BrokerError``
        when the connection is gone."""
        n = 0
        try:
            data = self.sock.recv(_RECV_BYTES)
        except BlockingIOError:
            data = None
        except OSError as e:
            raise BrokerError(f"lost the MQTT broker at {self.address}: {e.strerror or e}") from None
        if data is not None:
            if not data:
                raise BrokerError(f"the MQTT broker at {self.address} closed the connection")
            n = len(data)
            self._buf += data
        self._parse(into, arrival_ns)
        return n

    def _parse(self, into: list, arrival_ns: int) -> None:
        buf = self._buf
        pos, n = 0, len(buf)
        append = into.append
        while pos < n:
            header = buf[pos]
            i, length, shift, complete = pos + 1, 0, 0, False
            while i < n:
                b = buf[i]
                i += 1
                length |= (b & 0x7F) << shift
                if b < 0x80:
                    complete = True
                    break
                shift += 7
                if shift > 21:
                    raise BrokerError(f"the MQTT broker at {self.address} sent a malformed packet length")
            if not complete or i + length > n:
                break  # the rest of the packet has not arrived yet
            end = i + length
            kind = header >> 4
            if kind == 3:
                topic_end = i + 2 + ((buf[i] << 8) | buf[i + 1])
                qos = (header >> 1) & 3
                if qos:
                    if qos == 2:
                        raise BrokerError(f"the MQTT broker at {self.address} sent a QoS 2 message to a QoS 1 "
                                          "subscription")
                    append(((buf[topic_end] << 8) | buf[topic_end + 1], bytes(buf[i + 2:topic_end]),
                            bytes(buf[topic_end + 2:end]), arrival_ns))
                else:
                    append((0, bytes(buf[i + 2:topic_end]), bytes(buf[topic_end:end]), arrival_ns))
            elif kind not in (13, 9, 11):  # PINGRESP, SUBACK, UNSUBACK: nothing to do
                raise BrokerError(f"the MQTT broker at {self.address} sent an unexpected packet type {kind}")
            pos = end
        if pos:
            del buf[:pos]

    def ack(self, packet_ids: list[int]) -> None:
        """PUBACKs for ``packet_ids`` (in the order the messages came), one write."""
        ids = [p for p in packet_ids if p]
        if ids:
            self._send(b"".join([_PUBACK[p] for p in ids]))

    def keep_alive(self) -> None:
        """A PINGREQ when nothing was sent for half the keep-alive interval."""
        if time.monotonic() - self._last_send >= self.keepalive / 2:
            self._send(_PINGREQ)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                try:
                    sent = self.sock.send(view)
                except BlockingIOError:
                    _ready(self.sock, select.POLLOUT, 1.0)
                    continue
                view = view[sent:]
        except OSError as e:
            raise BrokerError(f"lost the MQTT broker at {self.address}: {e.strerror or e}") from None
        self._last_send = time.monotonic()

    def close(self, disconnect: bool = True) -> None:
        """DISCONNECT (the session stays at the broker) and close the socket."""
        try:
            if disconnect:
                self._send(_DISCONNECT)
        except BrokerError:
            pass
        finally:
            self.sock.close()


def _next_packet(buf: bytearray, pos: int) -> tuple[int, int, int] | None:
    """(header, body start, body end) of the complete packet at ``pos``, or None."""
    n = len(buf)
    if pos >= n:
        return None
    i, length, shift = pos + 1, 0, 0
    while True:
        if i >= n:
            return None
        b = buf[i]
        i += 1
        length |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if i + length > n:
        return None
    return buf[pos], i, i + length
