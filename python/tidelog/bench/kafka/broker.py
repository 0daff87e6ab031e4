"""Fetch Kafka's jars, start and stop a single-node KRaft broker (see the package docstring)."""
from __future__ import annotations

import atexit
import base64
import fcntl
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

DEFAULT_VERSION = "4.1.1"
_POM = Path(__file__).with_name("pom.xml")


def kafka_version() -> str:
    return os.environ.get("TIDELOG_KAFKA_VERSION", DEFAULT_VERSION)


def unavailable_reason() -> str | None:
    """Why no broker can run here, or None."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if missing:
        return f"{' and '.join(missing)} not found (Kafka runs from Maven Central jars: needs Java 17+ and Maven)"
    return None


def tool_env() -> dict:
    """The environment for java and mvn: this one without LD_PRELOAD (a
    sanitizer run of the test suite preloads libasan, which a JVM must not get)."""
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def libs_dir(version: str | None = None) -> Path:
    version = version or kafka_version()
    if os.environ.get("TIDELOG_KAFKA_LIBS"):
        return Path(os.environ["TIDELOG_KAFKA_LIBS"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "tidelog" / f"kafka-{version}"


def fetch_jars(version: str | None = None) -> Path:
    """The folder holding Kafka ``version``'s broker and tools jars, fetched
    with Maven the first time (seconds; ~54 MB). Safe across processes: one
    fetches under a lock file, into a temporary folder renamed into place."""
    version = version or kafka_version()
    libs = libs_dir(version)
    marker = libs / f"kafka_2.13-{version}.jar"
    if marker.exists():
        return libs
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    libs.parent.mkdir(parents=True, exist_ok=True)
    with open(libs.parent / f".{libs.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists():
            return libs
        work = Path(tempfile.mkdtemp(prefix=f".{libs.name}-", dir=libs.parent))
        try:
            # Maven writes beside the pom: run it on a copy, not in the installed package.
            shutil.copy(_POM, work / "pom.xml")
            out = work / "libs"
            done = subprocess.run(
                ["mvn", "-B", "-q", "-Dstyle.color=never", "-f", str(work / "pom.xml"), f"-Dkafka.version={version}",
                 "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={out}"],
                capture_output=True, text=True, timeout=600, env=tool_env())
            if done.returncode != 0 or not (out / marker.name).exists():
                tail = (done.stdout + done.stderr).strip().splitlines()[-15:]
                raise RuntimeError(f"fetching Kafka {version} with Maven failed (exit {done.returncode}):\n"
                                   + "\n".join(tail))
            if libs.exists():
                shutil.rmtree(libs)
            out.rename(libs)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return libs


def _free_port() -> int:
    """A port free now, below Linux's ephemeral range (32768-60999): a port the
    kernel handed out for bind(0) may be taken by any outgoing connection (a
    client of another broker) before the JVM binds it."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("kafka: no free port found in 20000-32000 on 127.0.0.1")


def new_cluster_id(uuid4=uuid.uuid4) -> str:
    """A random KRaft cluster id: 16 random bytes in URL-safe base64, as Kafka's
    ``Uuid.randomUuid()`` makes them, never starting with "-" (Kafka draws again
    for the same reason: ``kafka-storage format -t -abc...`` reads the id as an
    option and fails, one time in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid4().bytes).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


_SERVER_PROPERTIES = """\
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:{cport}
listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{cport}
advertised.listeners=PLAINTEXT://127.0.0.1:{port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs={data}/kafka-logs
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=500
num.network.threads=2
num.io.threads=2
"""

_LOG4J = """\
appender.console.type=Console
appender.console.name=STDOUT
appender.console.layout.type=PatternLayout
appender.console.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
"""


class Broker:
    """One single-node KRaft broker on 127.0.0.1.

    Not thread-safe: start and stop it from one thread (``shared_broker`` does).
    ``bootstrap`` is "127.0.0.1:<port>" once started."""

    def __init__(self, data_dir: str | None = None, port: int | None = None, heap: str = "1g"):
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="tidelog-kafka-"))
        self._own_port = port is None
        self.port = port or _free_port()
        self.heap = heap
        self.proc: subprocess.Popen | None = None
        self.libs: Path | None = None
        self.started_s = float("nan")
        self._cport: int | None = None  # kept across a kill and restart: the quorum's address stays

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def classpath(self) -> str:
        assert self.libs is not None
        return str(self.libs / "*")

    def start(self, timeout_s: float = 90) -> "Broker":
        """Starts the broker and waits until it answers a metadata request. With
        ports it picked itself, a port taken meanwhile (the broker exits with
        "Address already in use") is retried on new ports, three times."""
        self.libs = fetch_jars()
        for attempt in range(3 if self._own_port else 1):
            try:
                return self._start_once(timeout_s)
            except RuntimeError as e:
                if attempt == 2 or not self._own_port or "Address already in use" not in str(e):
                    raise
                self.port = _free_port()
                self._cport = None
        raise AssertionError("unreachable")

    def _start_once(self, timeout_s: float) -> "Broker":
        cport = self._cport or _free_port()
        while cport == self.port:
            cport = _free_port()
        self._cport = cport
        if _port_open(self.port) or _port_open(cport):
            raise RuntimeError(f"kafka: port {self.port} or {cport} on 127.0.0.1 is already in use")
        data = self.data_dir
        data.mkdir(parents=True, exist_ok=True)
        (data / "server.properties").write_text(_SERVER_PROPERTIES.format(port=self.port, cport=cport, data=data))
        (data / "log4j2.properties").write_text(_LOG4J)
        if not (data / "kafka-logs" / "meta.properties").exists():
            cluster_id = new_cluster_id()
            fmt = subprocess.run(["java", "-cp", self.classpath(), "kafka.tools.StorageTool", "format", "-t",
                                  cluster_id, "-c", str(data / "server.properties")],
                                 capture_output=True, text=True, timeout=120, env=tool_env())
            if fmt.returncode != 0:
                raise RuntimeError(f"kafka: formatting the storage failed: {(fmt.stdout + fmt.stderr)[-2000:]}")
        t0 = time.monotonic()
        log = open(data / "broker.log", "ab")
        self.proc = subprocess.Popen(
            ["java", "-Xms512m", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
             f"-Dlog4j2.configurationFile=file:{data / 'log4j2.properties'}",
             "-cp", self.classpath(), "kafka.Kafka", str(data / "server.properties")],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, env=tool_env())
        log.close()
        deadline = t0 + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                code, self.proc = self.proc.returncode, None
                raise RuntimeError(f"kafka: the broker exited ({code}): {self.log_tail()}")
            if _port_open(self.port) and self._answers_metadata():
                self.started_s = time.monotonic() - t0
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"kafka: not up after {timeout_s:.0f} s: {self.log_tail()}")

    def _answers_metadata(self) -> bool:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap}).list_topics(timeout=2)
            return True
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join((self.data_dir / "broker.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker.log)"

    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def kill(self) -> None:
        """SIGKILLs the broker (a crash: no shutdown, no flush) and keeps its
        data folder and ports, so that ``start()`` brings the same broker back."""
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --------------------------------------------------------- client helpers
    def create_topic(self, name: str, partitions: int = 1, config: dict | None = None) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1,
                                                config={k: str(v) for k, v in (config or {}).items()})])
        futures[name].result(30)
        # The leader is elected asynchronously: wait until metadata names one.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            md = admin.list_topics(name, timeout=5).topics.get(name)
            if md is not None and md.error is None and md.partitions and \
                    all(p.leader >= 0 for p in md.partitions.values()):
                return
            time.sleep(0.05)
        raise RuntimeError(f"kafka: topic {name!r} has no leader after 30 s")

    def delete_topic(self, name: str) -> None:
        from confluent_kafka.admin import AdminClient

        try:
            AdminClient({"bootstrap.servers": self.bootstrap}).delete_topics([name])[name].result(30)
        except Exception:  # noqa: BLE001 - best effort: the broker's data goes at stop anyway
            pass

    def warm_up(self, seconds: float) -> None:
        """Traffic through a scratch topic for about ``seconds``: the JIT, the
        page cache and the request paths of a fresh broker warm up."""
        if seconds <= 0:
            return
        from confluent_kafka import Consumer, Producer, TopicPartition

        topic = "tidelog-warmup"
        self.create_topic(topic)
        p = Producer({"bootstrap.servers": self.bootstrap, "acks": "all", "linger.ms": 0})
        c = Consumer({"bootstrap.servers": self.bootstrap, "group.id": "tidelog-warmup",
                      "enable.auto.commit": False, "fetch.wait.max.ms": 1, "fetch.queue.backoff.ms": 1})
        c.assign([TopicPartition(topic, 0, 0)])
        value = b"w" * 100
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for _ in range(50):
                p.produce(topic, value)
            p.flush(10)
            c.consume(num_messages=1000, timeout=0.05)
        c.close()
        del p  # (destroyed now: a client left alive logs the broker's shutdown as an error)
        self.delete_topic(topic)


_shared: Broker | None = None
_shared_lock = threading.Lock()


_warmup_s = 10.0


def set_warmup_seconds(seconds: float) -> None:
    """The warm-up of a broker ``shared_broker`` starts from now on
    (``TIDELOG_KAFKA_WARMUP_S`` overrides it)."""
    global _warmup_s
    _warmup_s = seconds


def warmup_seconds() -> float:
    return float(os.environ.get("TIDELOG_KAFKA_WARMUP_S", _warmup_s))


def shared_broker() -> Broker:
    """This process's broker, started (and warmed up) on first use, stopped at exit."""
    global _shared
    with _shared_lock:
        if _shared is None or _shared.proc is None or _shared.proc.poll() is not None:
            broker = Broker().start()
            atexit.register(broker.stop)
            broker.warm_up(warmup_seconds())
            _shared = broker
        return _shared


def running_shared_broker() -> Broker | None:
    """This process's broker if it is running (never starts one)."""
    with _shared_lock:
        if _shared is not None and _shared.proc is not None and _shared.proc.poll() is None:
            return _shared
        return None


def stop_shared_broker() -> None:
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.stop()
            _shared = None
