# cython: language_level=3
"""The per-read path of a WebSocket connection in Cython: the API of ``_protocol.pyi``,
with the same bytes out, events and close codes as ``fastws._protocol_py``, the
reference, whose methods these are line by line.

Compiled, a read that echoes a message spends no Python frame in the glue: the
transport calls ``buffer_updated`` here, the parser and the connection dispatch in
C, the listener's ``send_message`` lands here, and ``_flush`` writes and reuses the
send buffer. Everything off that path is ``WebSocket``'s, in Python, reached through
the hooks of the contract.

It drives the compiled ``Connection`` through its C interface (``_connection.pxd``):
the two are selected together, so a connection here is always the compiled one.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_Resize
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.object cimport PyTypeObject

import logging
from collections import deque

from fastws._connection cimport Connection

from fastws._connection_py import OP_BINARY, OP_TEXT

cdef int _OP_TEXT = OP_TEXT
from fastws.errors import ProtocolError

# What ``send`` returns when there is nothing to wait for (see _protocol_py.py).
cdef object _sent_loop = None
cdef object _sent_done = None


cdef object _sent(loop):
    global _sent_loop, _sent_done
    done = loop.create_future()
    done.set_result(None)
    _sent_loop, _sent_done = loop, done
    return done

from fastws._members cimport PyDescr_NewMember, PyMemberDef, PyType_Modified, T_OBJECT_EX

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char *data, Py_ssize_t size, const char *errors)

cdef extern from *:
    """
    #include <stddef.h>
    #define FASTWS_CORE_OPTIONS offsetof(struct FastwsProtocolCore, options)
    #define FASTWS_CORE_LOOP offsetof(struct FastwsProtocolCore, loop)
    #define FASTWS_CORE_TRANSPORT offsetof(struct FastwsProtocolCore, transport)
    #define FASTWS_CORE_CONN offsetof(struct FastwsProtocolCore, conn)
    #define FASTWS_CORE_LISTENER offsetof(struct FastwsProtocolCore, listener)
    #define FASTWS_CORE_SEEN offsetof(struct FastwsProtocolCore, seen)
    #define FASTWS_CORE_DEADLINE offsetof(struct FastwsProtocolCore, deadline)
    #define FASTWS_CORE_LAST_SEEN offsetof(struct FastwsProtocolCore, last_seen)
    #define FASTWS_CORE_PING_SENT_AT offsetof(struct FastwsProtocolCore, ping_sent_at)
    #define FASTWS_CORE_GET_BUFFER offsetof(struct FastwsProtocolCore, _get_buffer)
    #define FASTWS_CORE_PARSED offsetof(struct FastwsProtocolCore, _parsed)
    #define FASTWS_CORE_IN_READ offsetof(struct FastwsProtocolCore, _in_read)
    #define FASTWS_CORE_FLUSH_PENDING offsetof(struct FastwsProtocolCore, _flush_pending)
    #define FASTWS_CORE_FLUSHER offsetof(struct FastwsProtocolCore, _flusher)
    #define FASTWS_CORE_QUEUE offsetof(struct FastwsProtocolCore, _queue)
    #define FASTWS_CORE_WAITER offsetof(struct FastwsProtocolCore, _waiter)
    """
    Py_ssize_t FASTWS_CORE_OPTIONS
    Py_ssize_t FASTWS_CORE_LOOP
    Py_ssize_t FASTWS_CORE_TRANSPORT
    Py_ssize_t FASTWS_CORE_CONN
    Py_ssize_t FASTWS_CORE_LISTENER
    Py_ssize_t FASTWS_CORE_SEEN
    Py_ssize_t FASTWS_CORE_DEADLINE
    Py_ssize_t FASTWS_CORE_LAST_SEEN
    Py_ssize_t FASTWS_CORE_PING_SENT_AT
    Py_ssize_t FASTWS_CORE_GET_BUFFER
    Py_ssize_t FASTWS_CORE_PARSED
    Py_ssize_t FASTWS_CORE_IN_READ
    Py_ssize_t FASTWS_CORE_FLUSH_PENDING
    Py_ssize_t FASTWS_CORE_FLUSHER
    Py_ssize_t FASTWS_CORE_QUEUE
    Py_ssize_t FASTWS_CORE_WAITER


cdef enum:
    S_OPEN = 1
    S_CLOSED = 3


cdef inline Connection _compiled(object conn):
    """``conn`` as the compiled connection; anything else is refused, as the reference's
    attribute lookups would refuse None."""
    if type(conn) is not Connection:
        if conn is None:
            raise AttributeError("'NoneType' object has no attribute 'out'")
        raise TypeError(f"the compiled glue needs the compiled Connection, not {type(conn)!r}")
    return <Connection>conn


cdef object logger = logging.getLogger("fastws")


cdef class Flusher:
    """One loop's connections with output waiting, written out by one callback per
    loop iteration (see _protocol_py.py); each flush is a C call."""

    cdef public list pending
    cdef public bint scheduled

    def __init__(self):
        self.pending = []
        self.scheduled = False

    def add(self, ws):
        self.pending.append(ws)
        if not self.scheduled:
            self.scheduled = True
            ws.loop.call_soon(self.run)

    def run(self):
        cdef list pending = self.pending
        self.scheduled = False
        self.pending = []
        for ws in pending:
            try:
                if isinstance(ws, ProtocolCore):
                    (<ProtocolCore>ws)._flush_soon()  # a C call
                else:
                    ws._flush_soon()  # a connection on the reference core
            except Exception:  # one broken connection must not hold back the others' output
                logger.exception("fastws: error flushing a connection")


def timers_due(connections, double now, double interval, double timeout):
    """The connections whose timers need ``check_timers(now)`` (see _protocol_py.py):
    an idle connection costs a few C comparisons per tick instead of a Python call."""
    cdef list due = []
    cdef ProtocolCore core
    cdef double sent
    for ws in connections:
        if not isinstance(ws, ProtocolCore):
            due.append(ws)  # not one of ours: let it look for itself
            continue
        core = <ProtocolCore>ws
        if core.deadline or core.seen:
            due.append(ws)
            continue
        conn = core.conn
        if conn is None or not interval:
            continue
        if type(conn) is not Connection:
            due.append(ws)  # not the compiled connection: check_timers decides
            continue
        if (<Connection>conn)._state != S_OPEN:
            continue
        sent = core.ping_sent_at
        if sent:
            if timeout and now - sent >= timeout:
                due.append(ws)
        elif now - <double>core.last_seen >= interval:
            due.append(ws)
    return due


cdef public class ProtocolCore [object FastwsProtocolCore, type FastwsProtocolCoreType]:
    """The fields the read and write paths touch, and the methods that touch them."""

    # Writable member descriptors (see the end of the module): Python code, such as
    # broadcast's loop over thousands of connections, reads them as fast as __slots__.
    cdef object options
    cdef object loop
    cdef object transport
    cdef object conn
    cdef object listener
    cdef object seen
    cdef object deadline
    cdef object last_seen
    cdef object ping_sent_at
    cdef object _get_buffer
    cdef object _parsed
    cdef object _in_read
    cdef object _flush_pending
    cdef object _flusher
    cdef object _queue
    cdef object _waiter

    def get_buffer(self, sizehint):
        return self._get_buffer(sizehint)

    def buffer_updated(self, nbytes):
        cdef Connection conn
        if self.conn is None:
            self._on_handshake_data(nbytes)
            return
        conn = _compiled(self.conn)
        self._in_read = True
        try:
            self._parsed(nbytes)
        except ProtocolError as exc:
            conn.fail(exc.code, exc.reason)
        except Exception:
            self._internal_error("on_message")
        finally:
            self._in_read = False
        self.seen = True
        if conn.out:
            self._flush()
        if conn._state == S_CLOSED:
            self._close_transport()

    def _after_read(self):
        cdef Connection conn = _compiled(self.conn)
        if conn.out:
            self._flush()
        if conn._state == S_CLOSED:
            self._close_transport()

    def send_message(self, opcode, payload):
        """Queue one whole message (OP_TEXT or OP_BINARY) without waiting; sent this loop turn.

        The callback API's send; it may be compressed and is one frame or,
        with ``send()`` and an iterable, several.
        """
        cdef Connection conn
        if self.conn is None:
            raise AttributeError("'NoneType' object has no attribute 'send'")
        conn = _compiled(self.conn)
        if isinstance(payload, str):
            payload = payload.encode()
        conn.send_message(opcode, payload)
        if not self._in_read:
            self._schedule_flush()
        if len(conn.out) > self.options.max_write_buffer:
            self._check_write_buffer()

    def _enqueue(self, opcode, payload):
        """The async API's on_message: the message, as str or bytes, joins the queue."""
        cdef Py_buffer view
        PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        try:  # str(payload, "utf-8") or bytes(payload), read straight from the view
            if opcode == _OP_TEXT:
                message = PyUnicode_DecodeUTF8(<char *>view.buf, view.len, NULL)
            else:
                message = PyBytes_FromStringAndSize(<char *>view.buf, view.len)
        finally:
            PyBuffer_Release(&view)
        queue = self._queue
        if queue is None:  # made on the first message: an idle connection holds none
            queue = self._queue = deque()
        queue.append(message)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(queue) >= self.options.max_queue:
            self._queue_full()

    def send(self, message):
        """Send a message; awaiting it waits for the transport to drain only with
        slow_consumer="wait".

        A ``str`` goes as text, a bytes-like as binary; an iterable of them is
        sent as one fragmented message of the type of its first item. The
        message is queued when ``send`` is called; what it returns is already
        complete unless there is a drain to wait for.
        """
        cdef Connection conn
        if self.conn is None:
            raise AttributeError("'NoneType' object has no attribute 'send'")
        conn = _compiled(self.conn)
        if isinstance(message, str):
            conn.send_message(OP_TEXT, message.encode())
        elif isinstance(message, (bytes, bytearray, memoryview)):
            conn.send_message(OP_BINARY, message)
        else:
            self._send_fragments(message)
        if not self._in_read:
            self._schedule_flush()
        options = self.options
        if len(conn.out) > options.max_write_buffer:
            self._check_write_buffer()
        if options.slow_consumer == "wait":
            return self._drain()
        if _sent_loop is self.loop:
            return _sent_done
        return _sent(self.loop)

    cpdef _schedule_flush(self):
        if not self._flush_pending:
            self._flush_pending = True
            self._flusher.add(self)  # one loop callback flushes every connection waiting

    cpdef _flush_soon(self):
        cdef Connection conn
        self._flush_pending = False
        conn = _compiled(self.conn)
        if conn.out:
            self._flush()
        if conn._state == S_CLOSED:
            self._close_transport()

    cpdef _flush(self):
        cdef Connection conn
        cdef bytearray out
        transport = self.transport
        conn = _compiled(self.conn)
        if transport is None or transport.is_closing():
            conn.out = bytearray()
            return
        out = conn.out
        transport.write(out)
        try:
            # reuse it (as del out[:]): the transport copied it or is done with it
            PyByteArray_Resize(out, 0)
        except BufferError:
            conn.out = bytearray()  # the transport still holds a view of it
        if transport.get_write_buffer_size() > self.options.max_write_buffer:
            self._check_write_buffer()


cdef PyMemberDef _MEMBERS[16]


cdef _expose_members():
    """Writable member descriptors for the core's fields.

    A ``cdef public`` field becomes a getset descriptor, which the interpreter reads
    through a call; a member descriptor is read like a ``__slots__`` field.
    """
    cdef PyTypeObject *cls = <PyTypeObject *>ProtocolCore
    cdef tuple fields = (
        (b"options", FASTWS_CORE_OPTIONS),
        (b"loop", FASTWS_CORE_LOOP),
        (b"transport", FASTWS_CORE_TRANSPORT),
        (b"conn", FASTWS_CORE_CONN),
        (b"listener", FASTWS_CORE_LISTENER),
        (b"seen", FASTWS_CORE_SEEN),
        (b"deadline", FASTWS_CORE_DEADLINE),
        (b"last_seen", FASTWS_CORE_LAST_SEEN),
        (b"ping_sent_at", FASTWS_CORE_PING_SENT_AT),
        (b"_get_buffer", FASTWS_CORE_GET_BUFFER),
        (b"_parsed", FASTWS_CORE_PARSED),
        (b"_in_read", FASTWS_CORE_IN_READ),
        (b"_flush_pending", FASTWS_CORE_FLUSH_PENDING),
        (b"_flusher", FASTWS_CORE_FLUSHER),
        (b"_queue", FASTWS_CORE_QUEUE),
        (b"_waiter", FASTWS_CORE_WAITER),
    )
    cdef int i
    for i in range(len(fields)):
        name, offset = fields[i]
        _NAMES.append(name)  # keeps the C string alive as long as the module
        _MEMBERS[i].name = <bytes>name
        _MEMBERS[i].type = T_OBJECT_EX
        _MEMBERS[i].offset = offset
        _MEMBERS[i].flags = 0
        _MEMBERS[i].doc = NULL
        (<object>cls.tp_dict)[name.decode("ascii")] = PyDescr_NewMember(cls, &_MEMBERS[i])
    PyType_Modified(cls)


cdef list _NAMES = []
_expose_members()
