"""Connectors: bridges between a tidelog log and other messaging systems.

Each connector is a subpackage of its own (``tidelog.connect.mqtt``), built
on the log's public API only, with its own contract in its docstring. What
they share, by contract:

* **Nothing acknowledged is lost.** A connector that ingests tells the other
  system a message was taken only after the rows it became are durable in
  the log (fdatasync), so a crash of the connector or of the machine loses
  nothing the other side handed over: delivery is at least once, and exactly
  once where the message carries an id the mapping names.
* **Bad input is typed.** Unusable settings raise ``tidelog.MappingError``
  (or another ``InvalidArgumentError``) before anything is read or written;
  an unreachable or refusing peer ``BrokerError``; the ``tidelog connect``
  command prints one line for either and exits with status 1 (2: bad
  arguments).
* **Optional dependencies** are imported when a connector needs them, and
  their absence is an ``ImportError`` naming the package to install.
"""
from __future__ import annotations
