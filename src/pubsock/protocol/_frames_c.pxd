# Cython declarations for _frames_py.py, compiled as _frames_c (pure-Python mode).
cimport cython

cdef bint _COMPILED
cdef object _utf8_incremental

@cython.locals(n=Py_ssize_t, repeated=bytes)
cpdef bytes apply_mask(object data, bytes mask)

@cython.locals(out=bytearray)
cdef bytearray _xor_copy(bytes src, Py_ssize_t start, Py_ssize_t end, bytes key, Py_ssize_t key_start)

@cython.locals(n=Py_ssize_t, i=Py_ssize_t, whole=Py_ssize_t, m0="unsigned char", m1="unsigned char",
               m2="unsigned char", m3="unsigned char")
cdef void _xor_into(unsigned char *out, const unsigned char *src, Py_ssize_t start, Py_ssize_t end,
                    const unsigned char *key, Py_ssize_t key_start)

cdef Py_ssize_t SCRATCH_SIZE
cdef bytearray _SCRATCH

@cython.locals(b0=int, mask_bit=int, header=bytes)
cpdef bytes frame_header(int opcode, Py_ssize_t length, bint fin=*, bint rsv1=*, object mask=*)

cdef list _SHORT_HEADERS

cpdef bytes build_frame(int opcode, object payload, bint fin=*, bint rsv1=*, object mask=*)


cdef class FrameReader:
    cdef public bint expect_masked
    cdef public Py_ssize_t max_payload_length
    cdef public object inflater
    cdef bytes _buffer
    cdef bint _done
    cdef int _frag_opcode
    cdef bint _frag_compressed
    cdef Py_ssize_t _frag_size
    cdef Py_ssize_t _frag_count
    cdef list _frag_parts
    cdef list _frag_text
    cdef object _decoder
    cdef public long long bytes_received
    cdef public long long messages_received

    @cython.locals(events=list, buf=bytes, n=Py_ssize_t, pos=Py_ssize_t, b0=int, b1=int,
                   length=Py_ssize_t, header=Py_ssize_t, end=Py_ssize_t, masked=int, payload=object,
                   scratch="unsigned char *")
    cpdef list feed(self, bytes data)

    cdef void _fail(self)

    @cython.locals(opcode=int, limit=Py_ssize_t)
    cdef object _check_header(self, int b0, int b1, Py_ssize_t length)

    @cython.locals(opcode=int, fin=int, text=bint, parts=list)
    cdef object _frame(self, int b0, object payload)

    cdef object _finish_text(self, object payload)

    @cython.locals(code=int)
    cdef object _control(self, int opcode, bytes payload)
