# Cython declarations for _topics_py.py, compiled as _topics_c (pure-Python mode).
cimport cython

cdef dict _NO_TOPICS
cdef list _TEXT_HEADERS
cdef list _BINARY_HEADERS



cdef class Outbox:
    cdef public Hub hub
    cdef public object transport
    cdef public object owner
    cdef public Py_ssize_t limit
    cdef public bint close_on_limit
    cdef public list frames
    cdef public Py_ssize_t size
    cdef public Py_ssize_t backlog
    cdef public bint paused
    cdef public bint closed
    cdef public dict topics
    cdef public object compressor
    cdef public bint congested

    @cython.locals(hub=Hub)
    cpdef Py_ssize_t push(self, bytes frame, Py_ssize_t payload_length)
    cpdef Py_ssize_t push_text(self, str text)
    cpdef Py_ssize_t push_binary(self, bytes payload)
    @cython.locals(n=Py_ssize_t)
    cdef Py_ssize_t _push_message(self, list short_headers, bytes payload)
    cdef bint _must_drop(self)
    cpdef void queue(self, bytes data)
    cpdef void push_control(self, bytes frame)
    @cython.locals(hub=Hub, frames=list)
    cdef void _append(self, bytes frame)
    @cython.locals(frames=list)
    cpdef void flush(self)
    cpdef void pause(self)
    cpdef void resume(self)
    cdef void _update_congestion(self)


cdef class Hub:
    cdef public object schedule
    cdef public dict topics
    cdef public list dirty
    cdef public bint scheduled
    cdef public long long messages_out
    cdef public long long bytes_out
    cdef public long long dropped
    cdef public long long publishes

    @cython.locals(dirty=list, outbox=Outbox)
    cpdef void flush(self)
    @cython.locals(subscribers=dict, topics=dict)
    cpdef bint subscribe(self, Outbox outbox, str topic)
    @cython.locals(subscribers=dict)
    cpdef bint unsubscribe(self, Outbox outbox, str topic)
    cpdef void unsubscribe_all(self, Outbox outbox)
    @cython.locals(subscribers=dict)
    cpdef Py_ssize_t subscriber_count(self, str topic)
    cpdef Py_ssize_t publish(self, str topic, bytes frame, Py_ssize_t payload_length, Outbox sender)
    cpdef Py_ssize_t publish_compressed(self, str topic, bytes frame, int opcode, bytes payload, Outbox sender)
    @cython.locals(subscribers=dict, recipients=Py_ssize_t, dropped=Py_ssize_t, compressed_bytes=Py_ssize_t, delivered=Py_ssize_t, backpressured=bint,
                   over_limit=list, big=bint, outbox=Outbox, shared=dict, plain=bytes)
    cdef Py_ssize_t _fan_out(self, str topic, bytes frame, Py_ssize_t payload_length, Outbox sender, int opcode, bytes payload)
