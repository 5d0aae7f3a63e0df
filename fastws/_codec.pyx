# cython: language_level=3
"""The frame codec in Cython: the API of ``_codec.pyi``, with the same results as
``fastws._codec_py`` but without Python work per byte or per frame.

The hot loops (masking, UTF-8 validation) are plain C in the block below so that
the compiler sees simple word loops it can vectorise.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBUF_WRITABLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.ref cimport PyObject, Py_XDECREF
from libc.stdint cimport uint32_t, uint64_t
from libc.string cimport memcpy, memmove

import os as _os
import threading as _threading

from fastws.buffers import default_pool
from fastws.closecodes import build_close, parse_close
from fastws import faults
from fastws.errors import ProtocolError

cdef extern from "pythread.h":
    unsigned long PyThread_get_thread_ident() nogil

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>

    #if defined(_MSC_VER)
    #define FASTWS_RESTRICT __restrict
    #else
    #define FASTWS_RESTRICT restrict
    #endif

    /* The 4 key bytes, starting at key[offset & 3], repeated to fill a word. */
    static inline uint64_t fastws_key_word(const unsigned char *key, Py_ssize_t offset) {
        unsigned char k[8];
        uint64_t w;
        int i;
        if ((offset & 3) == 0) {
            memcpy(k, key, 4);
            memcpy(k + 4, key, 4);
        } else {
            for (i = 0; i < 8; i++) k[i] = key[(i + offset) & 3];
        }
        memcpy(&w, k, 8);
        return w;
    }

    /* XOR n bytes in place with the repeated key word. memcpy loads and stores are
       unaligned-safe and compile to plain moves; the word loop has no dependencies
       between iterations, so -O3 vectorises it. */
    #define FASTWS_XOR_INPLACE_BODY                                       \
        Py_ssize_t words = n >> 3, i;                                     \
        unsigned char k[8];                                               \
        for (i = 0; i < words; i++) {                                     \
            uint64_t w;                                                   \
            memcpy(&w, p + 8 * i, 8);                                     \
            w ^= key;                                                     \
            memcpy(p + 8 * i, &w, 8);                                     \
        }                                                                 \
        memcpy(k, &key, 8);                                               \
        for (i = words * 8; i < n; i++) p[i] ^= k[i & 7];

    /* The same from src into dst in one pass; the buffers do not overlap. */
    #define FASTWS_XOR_COPY_BODY                                          \
        Py_ssize_t words = n >> 3, i;                                     \
        unsigned char k[8];                                               \
        for (i = 0; i < words; i++) {                                     \
            uint64_t w;                                                   \
            memcpy(&w, src + 8 * i, 8);                                   \
            w ^= key;                                                     \
            memcpy(dst + 8 * i, &w, 8);                                   \
        }                                                                 \
        memcpy(k, &key, 8);                                               \
        for (i = words * 8; i < n; i++) dst[i] = src[i] ^ k[i & 7];

    /* Long buffers go through a copy of the loop compiled for AVX2 as well, picked
       at load time when the CPU has it (x86-64 Linux with GCC); short ones stay
       inline (SSE2 is part of x86-64, so the inline loop is vectorised too). */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
        && !defined(__AVX2__)
    #define FASTWS_WIDE __attribute__((target_clones("avx2", "default"))) __attribute__((noinline))
    #elif defined(__GNUC__)
    #define FASTWS_WIDE __attribute__((noinline))
    #else
    #define FASTWS_WIDE
    #endif
    #define FASTWS_WIDE_FROM 256

    FASTWS_WIDE static void fastws_xor_inplace_wide(unsigned char *p, Py_ssize_t n, uint64_t key) {
        FASTWS_XOR_INPLACE_BODY
    }

    FASTWS_WIDE static void fastws_xor_copy_wide(unsigned char *FASTWS_RESTRICT dst,
                                                 const unsigned char *FASTWS_RESTRICT src,
                                                 Py_ssize_t n, uint64_t key) {
        FASTWS_XOR_COPY_BODY
    }

    static inline void fastws_xor_inplace(unsigned char *p, Py_ssize_t n, uint64_t key) {
        if (n >= FASTWS_WIDE_FROM) {
            fastws_xor_inplace_wide(p, n, key);
        } else {
            FASTWS_XOR_INPLACE_BODY
        }
    }

    static inline void fastws_xor_copy(unsigned char *FASTWS_RESTRICT dst,
                                       const unsigned char *FASTWS_RESTRICT src,
                                       Py_ssize_t n, uint64_t key) {
        if (n >= FASTWS_WIDE_FROM) {
            fastws_xor_copy_wide(dst, src, n, key);
        } else {
            FASTWS_XOR_COPY_BODY
        }
    }

    /* UTF-8 validation (RFC 3629) as a shift-based DFA: rows[byte] packs, for every
       state s, the next state at bits 6*s..6*s+5 (states are stored pre-multiplied
       by 6), so one step is a table load that does not depend on the state, a
       shift and a mask. State 0 rejects and is absorbing (its bits are all zero). */
    enum {
        FASTWS_U_REJECT = 0, FASTWS_U_ACCEPT = 6, FASTWS_U_TAIL1 = 12, FASTWS_U_TAIL2 = 18,
        FASTWS_U_TAIL3 = 24, FASTWS_U_AFTER_E0 = 30, FASTWS_U_AFTER_ED = 36,
        FASTWS_U_AFTER_F0 = 42, FASTWS_U_AFTER_F4 = 48
    };
    static uint64_t fastws_utf8_rows[256];

    static void fastws_utf8_edge(int state, int lo, int hi, int next) {
        int b;
        for (b = lo; b <= hi; b++) fastws_utf8_rows[b] |= (uint64_t)next << state;
    }

    static void fastws_utf8_init(void) {
        memset(fastws_utf8_rows, 0, sizeof(fastws_utf8_rows));
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0x00, 0x7F, FASTWS_U_ACCEPT);
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xC2, 0xDF, FASTWS_U_TAIL1);
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xE0, 0xE0, FASTWS_U_AFTER_E0);   /* no overlongs */
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xE1, 0xEC, FASTWS_U_TAIL2);
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xED, 0xED, FASTWS_U_AFTER_ED);   /* no surrogates */
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xEE, 0xEF, FASTWS_U_TAIL2);
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xF0, 0xF0, FASTWS_U_AFTER_F0);   /* no overlongs */
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xF1, 0xF3, FASTWS_U_TAIL3);
        fastws_utf8_edge(FASTWS_U_ACCEPT, 0xF4, 0xF4, FASTWS_U_AFTER_F4);   /* <= U+10FFFF */
        fastws_utf8_edge(FASTWS_U_TAIL1, 0x80, 0xBF, FASTWS_U_ACCEPT);
        fastws_utf8_edge(FASTWS_U_TAIL2, 0x80, 0xBF, FASTWS_U_TAIL1);
        fastws_utf8_edge(FASTWS_U_TAIL3, 0x80, 0xBF, FASTWS_U_TAIL2);
        fastws_utf8_edge(FASTWS_U_AFTER_E0, 0xA0, 0xBF, FASTWS_U_TAIL1);
        fastws_utf8_edge(FASTWS_U_AFTER_ED, 0x80, 0x9F, FASTWS_U_TAIL1);
        fastws_utf8_edge(FASTWS_U_AFTER_F0, 0x90, 0xBF, FASTWS_U_TAIL2);
        fastws_utf8_edge(FASTWS_U_AFTER_F4, 0x80, 0x8F, FASTWS_U_TAIL2);
    }

    /* Run the DFA from state over n bytes; FASTWS_U_REJECT as soon as the prefix
       is invalid. In the accepting state, ASCII is skipped a word at a time. */
    static inline uint32_t fastws_utf8_run(uint32_t state, const unsigned char *p, Py_ssize_t n) {
        const uint64_t high = 0x8080808080808080ULL;
        Py_ssize_t i = 0, stop;
        while (i < n) {
            if (state == FASTWS_U_ACCEPT) {
                while (n - i >= 32) {
                    uint64_t a, b, c, d;
                    memcpy(&a, p + i, 8);
                    memcpy(&b, p + i + 8, 8);
                    memcpy(&c, p + i + 16, 8);
                    memcpy(&d, p + i + 24, 8);
                    if ((a | b | c | d) & high) break;
                    i += 32;
                }
                while (n - i >= 8) {
                    uint64_t a;
                    memcpy(&a, p + i, 8);
                    if (a & high) break;
                    i += 8;
                }
            }
            stop = (n - i > 16) ? i + 16 : n;
            for (; i < stop; i++) state = (uint32_t)(fastws_utf8_rows[p[i]] >> state) & 63;
            if (state == FASTWS_U_REJECT) break;
        }
        return state;
    }

    /* A memoryview of base[start:start + len] that shares base's managed buffer,
       exactly like slicing it, without building a slice object. The new view
       holds the export on the underlying object, so it keeps the bytes alive. */
    static PyObject *fastws_subview(PyObject *base, Py_ssize_t start, Py_ssize_t len) {
        PyObject *v = PyMemoryView_FromObject(base);
        Py_buffer *view;
        if (v == NULL) return NULL;
        view = &((PyMemoryViewObject *)v)->view;
        view->buf = (char *)view->buf + start;
        view->len = len;
        view->shape[0] = len;
        return v;
    }

    /* The memoryview handed to on_frame for base[start:start + len]. *cache keeps
       the previous frame's view; when nothing else references it any more (no
       other reference, no export, no weak reference, not released, same buffer),
       it is pointed at the new frame instead of allocating a fresh view. Nobody
       can observe the change, since nobody can reach the object. New reference. */
    static PyObject *fastws_frame_view(PyObject **cache, PyObject *base,
                                       Py_ssize_t start, Py_ssize_t len) {
        PyObject *v = *cache;
    #ifdef _Py_MEMORYVIEW_RELEASED
        if (v != NULL && Py_REFCNT(v) == 1) {
            PyMemoryViewObject *mv = (PyMemoryViewObject *)v;
            PyMemoryViewObject *b = (PyMemoryViewObject *)base;
            if (mv->mbuf == b->mbuf && mv->exports == 0 && mv->weakreflist == NULL
                    && !(mv->flags & _Py_MEMORYVIEW_RELEASED)) {
                mv->view.buf = (char *)b->view.buf + start;
                mv->view.len = len;
                mv->view.shape[0] = len;
                mv->hash = -1;
                Py_INCREF(v);
                return v;
            }
        }
    #endif
        v = fastws_subview(base, start, len);
        if (v == NULL) return NULL;
        Py_INCREF(v);
        Py_XSETREF(*cache, v);
        return v;
    }
    """
    uint64_t fastws_key_word(const unsigned char *key, Py_ssize_t offset) nogil
    void fastws_xor_inplace(unsigned char *p, Py_ssize_t n, uint64_t key) nogil
    void fastws_xor_copy(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                         uint64_t key) nogil
    void fastws_utf8_init()
    uint32_t fastws_utf8_run(uint32_t state, const unsigned char *p, Py_ssize_t n) nogil
    uint32_t FASTWS_U_REJECT
    uint32_t FASTWS_U_ACCEPT
    object fastws_subview(object base, Py_ssize_t start, Py_ssize_t len)
    object fastws_frame_view(PyObject **cache, object base, Py_ssize_t start, Py_ssize_t len)

fastws_utf8_init()

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

__all__ = [
    "OP_CONTINUATION", "OP_TEXT", "OP_BINARY", "OP_CLOSE", "OP_PING", "OP_PONG",
    "apply_mask", "random_mask", "build_frame", "write_frame", "FrameParser",
    "Utf8Validator", "validate_utf8", "parse_close", "build_close",
]

cdef enum:
    _VALID_OPCODES = 0x0707   # bits 0, 1, 2, 8, 9, 10
    _READ_SIZE = 65536        # buffer class taken for a socket read

# ---------------------------------------------------------------- buffers

# The shared read buffer: reads and the parsing that follows them are synchronous
# on the loop's thread, so every parser of the main thread reads into this one
# buffer and keeps only the incomplete frame left at the end of a read, moved
# into a pooled buffer of its size. A parser processing bytes in it is
# _scratch_user; meanwhile (a callback feeding another parser) others use the pool.
cdef bytearray _scratch = bytearray(_READ_SIZE)
cdef object _scratch_view = memoryview(_scratch)
cdef unsigned char *_scratch_data = <unsigned char *>PyByteArray_AS_STRING(_scratch)
cdef unsigned long _scratch_thread = _threading.main_thread().ident
cdef object _scratch_user = None


cdef inline bint _scratch_free() noexcept:
    return _scratch_user is None and PyThread_get_thread_ident() == _scratch_thread


def _shared_read_buffer():
    """The shared read buffer (for tests: payload views may point into it)."""
    return _scratch



cdef struct _Bytes:
    const unsigned char *ptr
    Py_ssize_t len
    bint exported   # view holds a buffer export that must be released


cdef inline int _get_readable(object obj, Py_buffer *view, _Bytes *out) except -1:
    """Point out at obj's bytes. Immutable bytes skip the buffer protocol; anything
    mutable is exported so that it cannot be resized while the pointer is in use."""
    out.exported = False
    if type(obj) is bytes:
        out.ptr = <const unsigned char *>PyBytes_AS_STRING(obj)
        out.len = PyBytes_GET_SIZE(obj)
    else:
        try:
            PyObject_GetBuffer(obj, view, PyBUF_SIMPLE)
        except BufferError:   # a strided memoryview
            raise TypeError("a contiguous buffer is required") from None
        out.exported = True
        out.ptr = <const unsigned char *>view.buf
        out.len = view.len
    return 0


cdef inline void _release(Py_buffer *view, _Bytes *b) noexcept:
    if b.exported:
        b.exported = False
        PyBuffer_Release(view)


cdef inline int _get_key(object key, unsigned char *out) except -1:
    cdef Py_buffer view
    cdef _Bytes b
    _get_readable(key, &view, &b)
    try:
        if b.len != 4:
            raise ValueError("mask key must be 4 bytes")
        memcpy(out, b.ptr, 4)
    finally:
        _release(&view, &b)
    return 0


cdef inline Py_ssize_t _size_class(Py_ssize_t size) noexcept nogil:
    """BufferPool.size_class: 4 KiB at least, else the next power of two."""
    cdef Py_ssize_t cap = 4096
    while cap < size:
        cap <<= 1
    return cap


# ---------------------------------------------------------------- masking


cdef void mask_inplace(unsigned char *data, Py_ssize_t n, const unsigned char *key,
                       Py_ssize_t offset) noexcept nogil:
    fastws_xor_inplace(data, n, fastws_key_word(key, offset))


cdef void mask_copy(unsigned char *dst, const unsigned char *src, Py_ssize_t n,
                    const unsigned char *key) noexcept nogil:
    fastws_xor_copy(dst, src, n, fastws_key_word(key, 0))


def apply_mask(buf, key, Py_ssize_t offset=0):
    """XOR ``buf`` in place with the 4-byte ``key``, starting at key byte ``offset % 4``."""
    cdef unsigned char k[4]
    cdef Py_buffer view
    _get_key(key, k)
    if type(buf) is bytearray:
        mask_inplace(<unsigned char *>PyByteArray_AS_STRING(buf), PyByteArray_GET_SIZE(buf),
                     k, offset)
        return
    try:
        PyObject_GetBuffer(buf, &view, PyBUF_WRITABLE)
    except BufferError:
        if memoryview(buf).readonly:
            raise TypeError("apply_mask needs a writable buffer (bytearray or writable memoryview)"
                            ) from None
        raise TypeError("a contiguous buffer is required") from None
    try:
        mask_inplace(<unsigned char *>view.buf, view.len, k, offset)
    finally:
        PyBuffer_Release(&view)


# A block of os.urandom bytes handed out 4 at a time: one system call per 1024 keys.
cdef unsigned char _random_block[4096]
cdef Py_ssize_t _random_pos = 4096


cdef inline const unsigned char *_next_mask() except NULL:
    global _random_pos
    cdef bytes block
    if _random_pos >= 4096:
        block = _os.urandom(4096)
        memcpy(_random_block, PyBytes_AS_STRING(block), 4096)
        _random_pos = 0
    _random_pos += 4
    return _random_block + _random_pos - 4


def _forget_random_block():
    """After fork the child must not reuse the keys its parent will also use."""
    global _random_pos
    _random_pos = 4096


_os.register_at_fork(after_in_child=_forget_random_block)


def random_mask():
    """Four unpredictable bytes for a client frame's masking key."""
    return PyBytes_FromStringAndSize(<const char *>_next_mask(), 4)


# ---------------------------------------------------------------- building frames


cdef inline int _opcode_value(object opcode) except -1:
    """opcode as a C int, or ValueError when it is not a WebSocket opcode."""
    cdef long value
    try:
        value = opcode
    except OverflowError:
        value = -1
    if value < 0 or value > 15 or not (_VALID_OPCODES >> value) & 1:
        raise ValueError(f"unknown opcode {opcode:#x}")
    return value


cdef inline int _check_frame(int opcode, Py_ssize_t n, bint fin, bint rsv1) except -1:
    if opcode < 0 or opcode > 15 or not (_VALID_OPCODES >> opcode) & 1:
        raise ValueError(f"unknown opcode {opcode:#x}")
    if opcode >= 8:
        if n > 125:
            raise ValueError(f"control frame payload is {n} bytes; at most 125 are allowed")
        if not fin:
            raise ValueError("control frames cannot be fragmented (fin must be true)")
        if rsv1:
            raise ValueError("RSV1 cannot be set on a control frame")
    return 0


cdef inline Py_ssize_t _header_size(Py_ssize_t n, bint masked) noexcept nogil:
    cdef Py_ssize_t size = 2 if n < 126 else (4 if n < 65536 else 10)
    return size + 4 if masked else size


cdef inline void _write_frame(unsigned char *out, int opcode, const unsigned char *payload,
                              Py_ssize_t n, bint fin, bint rsv1,
                              const unsigned char *key) noexcept nogil:
    """Header, key and (masked) payload in one pass; out holds _header_size bytes more than n."""
    cdef unsigned char mask_bit = 0x80 if key != NULL else 0
    cdef int i
    out[0] = <unsigned char>((0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode)
    if n < 126:
        out[1] = mask_bit | <unsigned char>n
        out += 2
    elif n < 65536:
        out[1] = mask_bit | 126
        out[2] = <unsigned char>(n >> 8)
        out[3] = <unsigned char>n
        out += 4
    else:
        out[1] = mask_bit | 127
        for i in range(8):
            out[2 + i] = <unsigned char>((<uint64_t>n) >> (56 - 8 * i))
        out += 10
    if key != NULL:
        memcpy(out, key, 4)
        mask_copy(out + 4, payload, n, key)
    else:
        memcpy(out, payload, n)


cdef int append_frame(bytearray out, int opcode, const unsigned char *payload, Py_ssize_t n,
                      bint fin, bint rsv1, const unsigned char *mask_key) except -1:
    """Append one frame to out; mask_key NULL sends it unmasked."""
    _check_frame(opcode, n, fin, rsv1)
    return _append_checked_frame(out, opcode, payload, n, fin, rsv1, mask_key)


cdef inline int _append_checked_frame(bytearray out, int opcode, const unsigned char *payload,
                                      Py_ssize_t n, bint fin, bint rsv1,
                                      const unsigned char *mask_key) except -1:
    cdef Py_ssize_t old = PyByteArray_GET_SIZE(out)
    cdef Py_ssize_t size = _header_size(n, mask_key != NULL) + n
    PyByteArray_Resize(out, old + size)
    _write_frame(<unsigned char *>PyByteArray_AS_STRING(out) + old, opcode, payload, n,
                 fin, rsv1, mask_key)
    return 0


cdef inline const unsigned char *_pick_key(bint mask, object mask_key,
                                           unsigned char *storage) except? NULL:
    """The key to mask with, or NULL for an unmasked frame."""
    if mask_key is not None:
        _get_key(mask_key, storage)
        return storage
    if mask:
        memcpy(storage, _next_mask(), 4)
        return storage
    return NULL


def build_frame(opcode, payload, bint fin=True, bint rsv1=False, bint mask=False,
                mask_key=None):
    """One complete frame (header + payload, masked with ``mask_key`` when one is
    given, or with a random key when ``mask``) as bytes."""
    cdef Py_buffer view
    cdef _Bytes data
    cdef unsigned char k[4]
    cdef const unsigned char *key
    cdef bytes frame
    cdef int op = _opcode_value(opcode)
    _get_readable(payload, &view, &data)
    try:
        _check_frame(op, data.len, fin, rsv1)
        key = _pick_key(mask, mask_key, k)
        frame = PyBytes_FromStringAndSize(NULL, _header_size(data.len, key != NULL) + data.len)
        _write_frame(<unsigned char *>PyBytes_AS_STRING(frame), op, data.ptr, data.len,
                     fin, rsv1, key)
        return frame
    finally:
        _release(&view, &data)


def write_frame(bytearray out, opcode, payload, bint fin=True, bint rsv1=False,
                bint mask=False, mask_key=None):
    """Append one complete frame to ``out`` (a coalescing send buffer), masked as
    in ``build_frame``."""
    cdef Py_buffer view
    cdef _Bytes data
    cdef unsigned char k[4]
    cdef const unsigned char *key
    cdef int op = _opcode_value(opcode)
    _get_readable(payload, &view, &data)
    try:
        _check_frame(op, data.len, fin, rsv1)
        key = _pick_key(mask, mask_key, k)
        _append_checked_frame(out, op, data.ptr, data.len, fin, rsv1, key)
    finally:
        _release(&view, &data)


# ---------------------------------------------------------------- parsing frames

# The faults' numbers, defined once in fastws.faults, as C ints for the hot path.
cdef int F_OPCODE = faults.OPCODE
cdef int F_RSV1_UNNEGOTIATED = faults.RSV1_UNNEGOTIATED
cdef int F_RSV1_CONTROL = faults.RSV1_CONTROL
cdef int F_RSV1_CONTINUATION = faults.RSV1_CONTINUATION
cdef int F_RSV2 = faults.RSV2
cdef int F_RSV3 = faults.RSV3
cdef int F_FRAGMENTED_CONTROL = faults.FRAGMENTED_CONTROL
cdef int F_CONTROL_TOO_LONG = faults.CONTROL_TOO_LONG
cdef int F_UNMASKED = faults.UNMASKED
cdef int F_MASKED = faults.MASKED
cdef int F_LENGTH_MSB = faults.LENGTH_MSB
cdef int F_TOO_BIG = faults.TOO_BIG


cdef inline int _check_first_byte(unsigned int b0, bint rsv1_allowed) noexcept nogil:
    """The first fault in header byte 0 (checks a-d, in order), or 0."""
    cdef unsigned int opcode = b0 & 0x0F
    if not (_VALID_OPCODES >> opcode) & 1:
        return F_OPCODE
    if b0 & 0x40:
        if not rsv1_allowed:
            return F_RSV1_UNNEGOTIATED
        if opcode >= 8:
            return F_RSV1_CONTROL
        if opcode == 0:
            return F_RSV1_CONTINUATION
    if b0 & 0x20:
        return F_RSV2
    if b0 & 0x10:
        return F_RSV3
    if opcode >= 8 and not b0 & 0x80:
        return F_FRAGMENTED_CONTROL
    return 0


cdef class FrameParser:
    """Incremental frame parser: bytes in, ``on_frame(opcode, fin, rsv1, payload)`` out.

    ``payload`` is an unmasked memoryview into the parser's pooled buffer, valid
    only until ``on_frame`` returns. Errors raise ``ProtocolError`` (with the
    close code) and leave the parser failed: every later call raises it again.
    """

    def __init__(self, on_frame, *, bint client=False, Py_ssize_t max_size=1048576,
                 bint rsv1_allowed=False, pool=None):
        self._on_frame = on_frame
        self._client = client
        self.max_size = max_size
        self.rsv1_allowed = rsv1_allowed
        self._pool = default_pool if pool is None else pool
        self._buf = None
        self._view = None
        self._data = NULL
        self._cap = self._start = self._end = self._frame_size = 0
        self._error = None
        self._forget_frame_view()

    # -- buffer handling: the pool is called only to take or give back a buffer

    cdef int _take(self, Py_ssize_t size, Py_ssize_t keep_from, Py_ssize_t keep_len) except -1:
        """Switch to a pooled buffer of size's class, moving keep_len pending bytes along."""
        cdef bytearray buf = self._pool.acquire(size)
        if PyByteArray_GET_SIZE(buf) < size:
            raise ValueError(f"the pool returned {len(buf)} bytes when asked for {size}")
        cdef object view = memoryview(buf)
        cdef bytearray old = self._buf
        cdef unsigned char *data = <unsigned char *>PyByteArray_AS_STRING(buf)
        if keep_len:
            memcpy(data, self._data + keep_from, keep_len)
        self._forget_frame_view()
        self._buf = buf
        self._view = view
        self._data = data
        self._cap = PyByteArray_GET_SIZE(buf)
        self._start = 0
        self._end = keep_len
        self._give_back(old)
        return 0

    cdef int _drop(self) except -1:
        """Give the buffer back (pending bytes are lost)."""
        cdef bytearray old = self._buf
        self._forget_frame_view()
        self._buf = None
        self._view = None
        self._data = NULL
        self._cap = self._start = self._end = self._frame_size = 0
        self._give_back(old)
        return 0

    cdef int _give_back(self, bytearray old) except -1:
        global _scratch_user
        if old is _scratch:
            if _scratch_user is self:
                _scratch_user = None
        elif old is not None:
            self._pool.release(old)
        return 0

    cdef int _use_scratch(self) except -1:
        """Read into the shared buffer; the caller checked that this parser holds no
        pending bytes and that the shared buffer is free."""
        cdef bytearray old = self._buf
        if old is not _scratch:
            self._forget_frame_view()
            self._buf = _scratch
            self._view = _scratch_view
            self._data = _scratch_data
            self._cap = _READ_SIZE
            self._give_back(old)
        self._start = self._end = self._frame_size = 0
        return 0

    cdef inline void _forget_frame_view(self) noexcept:
        cdef PyObject *view = self._frame_view
        self._frame_view = NULL
        Py_XDECREF(view)

    def __dealloc__(self):
        self._forget_frame_view()

    cdef int _settle(self) except -1:
        """After processing: hold no buffer when idle, else keep the pending bytes at
        the start of the smallest size class that fits the pending frame."""
        cdef Py_ssize_t pending = self._end - self._start
        if self._buf is None:
            return 0
        if pending == 0:
            return self._drop()
        # _frame_size is 0 until the pending frame's header is complete (and checked)
        cdef Py_ssize_t capacity = _size_class(self._frame_size if self._frame_size else pending)
        if capacity != self._cap or self._buf is _scratch:
            self._take(capacity, self._start, pending)
        elif self._start:
            memmove(self._data, self._data + self._start, pending)
            self._start = 0
            self._end = pending
        return 0

    # -- errors

    cdef int _fail(self, int fault, uint64_t value) except -1:
        code, reason = faults.frame_fault(fault, value, self.max_size)
        self._error = (code, reason)
        self._drop()
        raise ProtocolError(code, reason)

    cdef int _raise_failed(self) except -1:
        code, reason = self._error
        raise ProtocolError(code, reason)

    # -- the hot path

    cdef int _process(self) except -1:
        """Hand out every complete frame between _start and _end; leave in _frame_size the
        size of the incomplete frame that follows (header checked), else 0."""
        cdef unsigned char *data = self._data
        cdef Py_ssize_t start = self._start
        cdef Py_ssize_t end = self._end
        cdef Py_ssize_t avail, header
        cdef const unsigned char *p
        cdef unsigned char *payload
        cdef unsigned int b0, b1, opcode
        cdef uint64_t n
        cdef int fault, i
        cdef bint masked = not self._client
        self._frame_size = 0
        while True:
            avail = end - start
            if avail < 2:
                if avail == 1:
                    fault = _check_first_byte(data[start], self.rsv1_allowed)
                    if fault:
                        return self._fail(fault, data[start] & 0x0F)
                return 0
            p = data + start
            b0 = p[0]
            b1 = p[1]
            fault = _check_first_byte(b0, self.rsv1_allowed)
            if fault:
                return self._fail(fault, b0 & 0x0F)
            opcode = b0 & 0x0F
            n = b1 & 0x7F
            if opcode >= 8 and n > 125:
                return self._fail(F_CONTROL_TOO_LONG, 0)
            if <bint>(b1 >> 7) != masked:
                return self._fail(F_MASKED if self._client else F_UNMASKED, 0)
            if n < 126:
                header = 2
            elif n == 126:
                if avail < 4:
                    return 0
                n = (<unsigned int>p[2] << 8) | p[3]
                header = 4
            else:
                if avail < 10:
                    return 0
                n = 0
                for i in range(8):
                    n = (n << 8) | p[2 + i]
                if n >> 63:
                    return self._fail(F_LENGTH_MSB, 0)
                header = 10
            if <long long>n > <long long>self.max_size:
                return self._fail(F_TOO_BIG, n)
            if masked:
                header += 4
            if avail < header or <uint64_t>(avail - header) < n:
                self._frame_size = header + <Py_ssize_t>n
                return 0
            payload = data + start + header
            if masked:
                fastws_xor_inplace(payload, <Py_ssize_t>n, fastws_key_word(payload - 4, 0))
            start += header + <Py_ssize_t>n
            self._start = start   # consumed before the callback: an exception leaves it handled
            self._on_frame(opcode, <bint>(b0 & 0x80), <bint>(b0 & 0x40),
                           fastws_frame_view(&self._frame_view, self._view,
                                             payload - data, <Py_ssize_t>n))
            # on_frame may have fed or released this parser: continue from its state
            if self._buf is None:
                return 0
            data = self._data
            start = self._start
            end = self._end

    # -- public API

    cdef int feed_ptr(self, const unsigned char *data, Py_ssize_t n) except -1:
        """feed() for C callers."""
        cdef Py_ssize_t pending = self._end - self._start
        if self._error is not None:
            return self._raise_failed()
        global _scratch_user
        if n <= 0:
            if pending:   # max_size or rsv1_allowed may have changed
                self._process_and_settle()
            return 0
        if pending == 0 and n <= _READ_SIZE and _scratch_free():
            self._use_scratch()
            _scratch_user = self
        elif self._buf is None or (pending == 0 and self._buf is _scratch):
            self._take(n, 0, 0)
        elif pending + n > self._cap - self._start:
            self._take(pending + n if pending + n > self._frame_size else self._frame_size,
                       self._start, pending)
        # memmove: data may be a view of this very buffer
        memmove(self._data + self._end, data, n)
        self._end += n
        return self._process_and_settle()

    cdef int _process_and_settle(self) except -1:
        try:
            self._process()
        finally:
            self._settle()
        return 0

    def feed(self, data):
        """Copy ``data`` in and hand out every frame it completes."""
        cdef Py_buffer view
        cdef _Bytes b
        _get_readable(data, &view, &b)
        try:
            self.feed_ptr(b.ptr, b.len)
        finally:
            _release(&view, &b)

    def get_buffer(self, Py_ssize_t sizehint=-1):
        """The free tail of the held buffer, for the transport to read into."""
        cdef Py_ssize_t want
        if self._error is not None:
            self._raise_failed()
        if self._end == self._start and (self._buf is None or self._buf is _scratch):
            if _scratch_free():
                self._use_scratch()
                return fastws_subview(_scratch_view, 0, _READ_SIZE)
            self._take(_READ_SIZE, 0, 0)
        else:
            # read at least 64 KiB at a time, and a big frame straight into place
            want = self._frame_size if self._frame_size > _READ_SIZE else _READ_SIZE
            if self._cap < want:
                self._take(_size_class(want), self._start, self._end - self._start)
        return fastws_subview(self._view, self._end, self._cap - self._end)

    def buffer_updated(self, Py_ssize_t nbytes):
        """``nbytes`` were written at the start of the last ``get_buffer()`` view."""
        if self._error is not None:
            self._raise_failed()
        global _scratch_user
        if self._buf is None or nbytes < 0 or nbytes > self._cap - self._end:
            raise ValueError(
                f"buffer_updated({nbytes}) does not match the view returned by get_buffer()")
        if self._buf is _scratch:
            if _scratch_user is not None and _scratch_user is not self:
                raise RuntimeError("buffer_updated() without a get_buffer() just before it")
            _scratch_user = self
        self._end += nbytes
        self._process_and_settle()

    @property
    def buffered(self):
        """Bytes received but not yet handed out as frames."""
        return self._end - self._start

    def release(self):
        """Return the pooled buffer; the parser may be used again afterwards."""
        self._drop()


# ---------------------------------------------------------------- UTF-8


cdef class Utf8Validator:
    """Incremental UTF-8 check for a text message arriving in fragments."""

    def __init__(self):
        self._state = FASTWS_U_ACCEPT

    cdef int feed_ptr(self, const unsigned char *data, Py_ssize_t n, bint final) except -1:
        """feed() for C callers."""
        cdef uint32_t state = fastws_utf8_run(self._state, data, n)
        if state == FASTWS_U_REJECT:
            self._state = FASTWS_U_ACCEPT
            raise ProtocolError(1007, faults.INVALID_UTF8)
        if final:
            self._state = FASTWS_U_ACCEPT
            if state != FASTWS_U_ACCEPT:
                raise ProtocolError(1007, faults.UNFINISHED_UTF8)
        else:
            self._state = state
        return 0

    def feed(self, data, bint final=False):
        """Raise ``ProtocolError(1007)`` at the first byte that cannot start or
        continue valid UTF-8 (or, when ``final``, if a code point is left open)."""
        cdef Py_buffer view
        cdef _Bytes b
        _get_readable(data, &view, &b)
        try:
            self.feed_ptr(b.ptr, b.len, final)
        finally:
            _release(&view, &b)

    def reset(self):
        self._state = FASTWS_U_ACCEPT


cdef bint utf8_valid(const unsigned char *data, Py_ssize_t n) noexcept nogil:
    return fastws_utf8_run(FASTWS_U_ACCEPT, data, n) == FASTWS_U_ACCEPT


def validate_utf8(data):
    """True when ``data`` is complete, valid UTF-8 (RFC 3629: no surrogates, no overlongs)."""
    cdef Py_buffer view
    cdef _Bytes b
    _get_readable(data, &view, &b)
    try:
        return utf8_valid(b.ptr, b.len)
    finally:
        _release(&view, &b)
