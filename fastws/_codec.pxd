# C-level interface of the Cython codec, for other Cython modules to cimport.
#
# Python code uses the same objects through ``fastws.codec``; the functions and
# methods below skip argument parsing and the buffer protocol.

from cpython.ref cimport PyObject
from libc.stdint cimport uint32_t, uint64_t


cdef void mask_inplace(unsigned char *data, Py_ssize_t n, const unsigned char *key,
                       Py_ssize_t offset) noexcept nogil
cdef void mask_copy(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                    const unsigned char *key) noexcept nogil
cdef bint utf8_valid(const unsigned char *data, Py_ssize_t n) noexcept nogil
cdef int append_frame(bytearray out, int opcode, const unsigned char *payload, Py_ssize_t n,
                      bint fin, bint rsv1, const unsigned char *mask_key) except -1


cdef class FrameParser:
    cdef public Py_ssize_t max_size
    cdef public bint rsv1_allowed
    cdef bint _client
    cdef object _on_frame
    cdef object _pool
    cdef bytearray _buf          # pooled buffer, or None when idle
    cdef object _view            # memoryview of _buf: owns the export that frame views share
    cdef PyObject *_frame_view   # the last frame's view, recycled when nobody kept it
    cdef unsigned char *_data    # start of _buf (stable: _buf cannot resize while exported)
    cdef Py_ssize_t _cap
    cdef Py_ssize_t _start       # first byte not yet handed out as a frame
    cdef Py_ssize_t _end         # end of received bytes
    cdef Py_ssize_t _frame_size  # size of the pending frame once its header is checked, else 0
    cdef object _error           # (code, reason) once failed, else None

    cdef int feed_ptr(self, const unsigned char *data, Py_ssize_t n) except -1
    cdef int _process(self) except -1
    cdef int _process_and_settle(self) except -1
    cdef int _settle(self) except -1
    cdef int _take(self, Py_ssize_t size, Py_ssize_t keep_from, Py_ssize_t keep_len) except -1
    cdef int _drop(self) except -1
    cdef int _give_back(self, bytearray old) except -1
    cdef int _use_scratch(self) except -1
    cdef void _forget_frame_view(self) noexcept
    cdef int _fail(self, int kind, uint64_t value) except -1
    cdef int _raise_failed(self) except -1


cdef class Utf8Validator:
    cdef uint32_t _state

    cdef int feed_ptr(self, const unsigned char *data, Py_ssize_t n, bint final) except -1
