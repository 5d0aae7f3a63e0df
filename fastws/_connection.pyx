# cython: language_level=3
"""The connection state machine in Cython: the API of ``_connection.pyi``, with the
same bytes out, events and close codes as ``fastws._connection_py``, the reference.

It is the per-read hot path: each frame the parser finds is dispatched here, a
whole unfragmented message goes to ``on_message`` after a C-level UTF-8 check,
and what the application sends is framed straight into ``out``. Everything off
that path (fragments, compression, closing) mirrors the reference line by line
and calls the same shared Python helpers.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.object cimport PyTypeObject

from fastws._codec cimport FrameParser, append_frame, utf8_valid

from fastws import closecodes, faults
from fastws._codec import Utf8Validator, build_close, parse_close, write_frame
from fastws._connection_py import DEFAULT_MAX_MESSAGE_SIZE, State, _frame_limit, _ignore
from fastws.errors import ConnectionClosedError, ConnectionClosedOK, ProtocolError

from fastws._members cimport (
    READONLY,
    PyDescr_NewMember,
    PyMemberDef,
    PyType_Modified,
    T_OBJECT_EX,
)

cdef extern from *:
    """
    #include <stddef.h>
    #define FASTWS_STATE_OFFSET offsetof(struct FastwsConnection, state)
    #define FASTWS_CLIENT_OFFSET offsetof(struct FastwsConnection, client)
    #define FASTWS_CLOSE_SENT_OFFSET offsetof(struct FastwsConnection, close_sent)
    """
    Py_ssize_t FASTWS_STATE_OFFSET
    Py_ssize_t FASTWS_CLIENT_OFFSET
    Py_ssize_t FASTWS_CLOSE_SENT_OFFSET

cdef enum:
    S_OPEN = 1
    S_CLOSING = 2
    S_CLOSED = 3
    OP_CONTINUATION = 0x0
    OP_TEXT = 0x1
    OP_CLOSE = 0x8
    OP_PING = 0x9
    OP_PONG = 0xA

cdef tuple _STATES = tuple(State)  # indexed by the state's value
cdef int NO_STATUS = closecodes.NO_STATUS
cdef int ABNORMAL = closecodes.ABNORMAL
cdef tuple _OK_CODES = (closecodes.NORMAL, closecodes.GOING_AWAY, closecodes.NO_STATUS)


cdef inline bint _is_opcode(object opcode):
    """An int that fits an opcode's four bits; anything else takes the reference's path,
    which raises the reference's error."""
    return type(opcode) is int and 0 <= opcode <= 15


cdef int _valid_utf8(object payload) except -1:
    cdef Py_buffer view
    cdef bint ok
    PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
    ok = utf8_valid(<const unsigned char *>view.buf, view.len)
    PyBuffer_Release(&view)
    return ok


cdef public class Connection [object FastwsConnection, type FastwsConnectionType]:
    """One WebSocket connection's protocol state, for either side."""

    # Fields and C methods are declared in _connection.pxd. client, state and close_sent
    # are read-only member descriptors (see the end of the module), which Python reads as
    # fast as __slots__; the glue reads them on every send.

    def __init__(self, *, bint client=False, on_message=_ignore, on_close=_ignore,
                 on_pong=_ignore, Py_ssize_t max_message_size=DEFAULT_MAX_MESSAGE_SIZE,
                 deflate=None, pool=None):
        self.client = client
        self._set_state(S_OPEN)
        self.out = bytearray()
        self.max_message_size = max_message_size
        self.on_message = on_message
        self.on_close = on_close
        self.on_pong = on_pong
        self.close_code = ABNORMAL
        self.close_reason = ""
        self.close_sent = False
        self.close_received = False
        self._deflate = deflate
        self.parser = FrameParser(
            self._on_frame,
            client=client,
            max_size=_frame_limit(max_message_size, deflate is not None),
            rsv1_allowed=deflate is not None,
            pool=pool,
        )
        self._msg_opcode = 0
        self._msg_compressed = False
        self._fragments = None
        self._utf8 = None

    cdef void _set_state(self, int state):
        self._state = state
        self.state = _STATES[state]

    # -- input -----------------------------------------------------------------

    def receive(self, data):
        """Feed bytes read from the transport."""
        if self._state == S_CLOSED:
            return
        try:
            self.parser.feed(data)
        except ProtocolError as exc:
            self.fail(exc.code, exc.reason)

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """A writable buffer to read into (asyncio.BufferedProtocol)."""
        return self.parser.get_buffer(sizehint)

    def buffer_updated(self, Py_ssize_t nbytes):
        """``nbytes`` were read into the buffer from ``get_buffer``."""
        if self._state == S_CLOSED:
            self.parser.release()
            return
        try:
            self.parser.buffer_updated(nbytes)
        except ProtocolError as exc:
            self.fail(exc.code, exc.reason)

    def receive_eof(self):
        """The transport ended; without a close handshake this is 1006."""
        if self._state != S_CLOSED:
            self._finish(ABNORMAL, "connection lost without a close frame")
        self.parser.release()

    @property
    def buffered(self):
        """Bytes received and held: a partial frame plus a partial message."""
        fragments = self._fragments
        return self.parser.buffered + (len(fragments) if fragments is not None else 0)

    def _on_frame(self, int opcode, bint fin, bint rsv1, payload):
        if self._state == S_CLOSED:
            return
        if opcode >= OP_CLOSE:
            self._on_control(opcode, payload)
        elif opcode == OP_CONTINUATION:
            if not self._msg_opcode:
                raise ProtocolError(
                    closecodes.PROTOCOL_ERROR, "continuation frame without a message to continue"
                )
            self._on_fragment(payload, fin)
        elif self._msg_opcode:
            raise ProtocolError(
                closecodes.PROTOCOL_ERROR, "new data frame before the fragmented message ended"
            )
        elif fin and not rsv1:
            # The common case: a whole, uncompressed message in one frame.
            if opcode == OP_TEXT and not _valid_utf8(payload):
                raise ProtocolError(closecodes.INVALID_DATA, faults.INVALID_UTF8)
            self.on_message(opcode, payload)
        else:
            self._msg_opcode = opcode
            self._msg_compressed = rsv1
            self._fragments = bytearray()
            if opcode == OP_TEXT:
                if self._utf8 is None:
                    self._utf8 = Utf8Validator()
                else:
                    self._utf8.reset()
            self._on_fragment(payload, fin)

    cdef int _on_fragment(self, payload, bint fin) except -1:
        cdef bytearray fragments = self._fragments
        cdef int opcode
        if self._msg_compressed:
            data = self._deflate.decompress(payload, fin, self.max_message_size)
        else:
            if len(fragments) + len(payload) > self.max_message_size:
                raise ProtocolError(
                    closecodes.MESSAGE_TOO_BIG,
                    f"message exceeds the limit of {self.max_message_size} bytes",
                )
            data = payload
        if self._msg_opcode == OP_TEXT:
            self._utf8.feed(data, fin)
        if not fin:
            fragments += data
            return 0
        opcode = self._msg_opcode
        self._msg_opcode = 0
        self._fragments = None
        if fragments:
            fragments += data
            self.on_message(opcode, memoryview(fragments))
        else:  # a message in one compressed frame: no reassembly copy
            self.on_message(opcode, data if isinstance(data, memoryview) else memoryview(data))
        return 0

    cdef int _on_control(self, int opcode, payload) except -1:
        if opcode == OP_PING:
            if not self.close_sent:
                self._queue(OP_PONG, payload, True, False)
        elif opcode == OP_PONG:
            self.on_pong(payload)
        else:
            code, reason = parse_close(payload)
            self.close_received = True
            if not self.close_sent:
                # Echo the peer's code, as RFC 6455 section 5.5.1 suggests.
                self._send_close(code, "")
            self._finish(code, reason)
        return 0

    # -- output ----------------------------------------------------------------

    cdef int _queue(self, int opcode, payload, bint fin, bint rsv1) except -1:
        """Frame ``payload`` into ``out``: masked by the codec for a client, else here."""
        cdef Py_buffer view
        if self.client:
            write_frame(self.out, opcode, payload, fin, rsv1, True)
            return 0
        try:
            PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE)
        except (BufferError, TypeError):
            write_frame(self.out, opcode, payload, fin, rsv1, False)  # raises the codec's error
            return 0
        try:
            append_frame(self.out, opcode, <const unsigned char *>view.buf, view.len, fin, rsv1,
                         NULL)
        finally:
            PyBuffer_Release(&view)
        return 0

    cdef int _check_open(self) except -1:
        if self.close_sent or self._state == S_CLOSED:
            raise self.closed_error()
        return 0

    def send(self, opcode, payload):
        """Queue one whole message (OP_TEXT or OP_BINARY) in ``out``."""
        self.send_message(opcode, payload)

    cdef int send_message(self, opcode, payload) except -1:
        """``send`` for the compiled glue, without a Python call."""
        self._check_open()
        if not _is_opcode(opcode):
            write_frame(self.out, opcode, payload, True, False, self.client)
            return 0
        deflate = self._deflate
        if deflate is not None and deflate.should_compress(len(payload)):
            self._queue(opcode, deflate.compress(payload), True, True)
        else:
            self._queue(opcode, payload, True, False)
        return 0

    def send_frame(self, opcode, payload, bint fin=True, bint rsv1=False):
        """Queue one raw frame: for fragmented sends; no compression applied."""
        self._check_open()
        if not _is_opcode(opcode):
            write_frame(self.out, opcode, payload, fin, rsv1, self.client)
            return
        self._queue(opcode, payload, fin, rsv1)

    def send_prebuilt(self, frame):
        """Queue a frame built once for many connections (server side only)."""
        self._check_open()
        self.out += frame

    def ping(self, payload=b""):
        self._check_open()
        self._queue(OP_PING, payload, True, False)

    def pong(self, payload=b""):
        self._check_open()
        self._queue(OP_PONG, payload, True, False)

    def close(self, int code=closecodes.NORMAL, str reason=""):
        """Start the closing handshake; a second call does nothing."""
        if self.close_sent or self._state == S_CLOSED:
            return
        self._send_close(code, reason)
        self._set_state(S_CLOSING)

    def fail(self, int code, str reason):
        """Fail the connection (RFC 6455 7.1.7): send a close frame and stop."""
        if self._state == S_CLOSED:
            return
        if not self.close_sent:
            self._send_close(code, reason)
        self._finish(code, reason)

    cdef int _send_close(self, int code, str reason) except -1:
        reason_bytes = reason.encode("utf-8")
        if len(reason_bytes) > 123:  # truncate on a character boundary
            reason = reason_bytes[:123].decode("utf-8", "ignore")
        payload = build_close(code, reason) if code != NO_STATUS else b""
        self._queue(OP_CLOSE, payload, True, False)
        self.close_sent = True
        return 0

    cdef int _finish(self, int code, str reason) except -1:
        self._set_state(S_CLOSED)
        self.close_code = code
        self.close_reason = reason
        self._fragments = None
        self._msg_opcode = 0
        if self._deflate is not None:
            self._deflate.reset_message()
        self.on_close(code, reason)
        return 0

    def release(self):
        """Give pooled buffers back (after the transport is gone)."""
        self.parser.release()

    def closed_error(self):
        code = self.close_code
        if code in _OK_CODES:
            return ConnectionClosedOK(code, self.close_reason)
        return ConnectionClosedError(code, self.close_reason)


cdef PyMemberDef _MEMBERS[3]


cdef void _read_only(PyMemberDef *member, const char *name, Py_ssize_t offset) noexcept:
    member.name = name
    member.type = T_OBJECT_EX
    member.offset = offset
    member.flags = READONLY
    member.doc = NULL


cdef _expose_members():
    """Read-only member descriptors for the fields Python code reads most.

    A ``cdef readonly`` field becomes a getset descriptor, which the interpreter reads
    through a call; a member descriptor is read like a ``__slots__`` field.
    """
    cdef PyTypeObject *cls = <PyTypeObject *>Connection
    cdef int i
    _read_only(&_MEMBERS[0], "state", FASTWS_STATE_OFFSET)
    _read_only(&_MEMBERS[1], "client", FASTWS_CLIENT_OFFSET)
    _read_only(&_MEMBERS[2], "close_sent", FASTWS_CLOSE_SENT_OFFSET)
    for i in range(3):
        (<object>cls.tp_dict)[_MEMBERS[i].name.decode("ascii")] = PyDescr_NewMember(cls, &_MEMBERS[i])
    PyType_Modified(cls)


_expose_members()
