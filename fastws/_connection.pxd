# C-level interface of the compiled connection, for other Cython modules to cimport.
#
# Python code uses the same object through ``fastws.connection``; the glue
# (``_protocol.pyx``) reads its fields and queues messages without Python calls.

from fastws._codec cimport FrameParser


cdef public class Connection [object FastwsConnection, type FastwsConnectionType]:
    cdef object client
    cdef int _state   # the state for C, always set through _set_state
    cdef object state  # the same as a State, for Python
    cdef public bytearray out
    cdef public Py_ssize_t max_message_size
    cdef public object on_message
    cdef public object on_close
    cdef public object on_pong
    cdef public int close_code
    cdef public str close_reason
    cdef object close_sent
    cdef public bint close_received
    cdef readonly FrameParser parser
    cdef readonly object _deflate
    cdef int _msg_opcode
    cdef bint _msg_compressed
    cdef bytearray _fragments
    cdef object _utf8

    cdef void _set_state(self, int state)
    cdef int _on_fragment(self, payload, bint fin) except -1
    cdef int _on_control(self, int opcode, payload) except -1
    cdef int _queue(self, int opcode, payload, bint fin, bint rsv1) except -1
    cdef int _check_open(self) except -1
    cdef int send_message(self, opcode, payload) except -1
    cdef int _send_close(self, int code, str reason) except -1
    cdef int _finish(self, int code, str reason) except -1
