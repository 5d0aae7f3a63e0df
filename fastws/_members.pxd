# What the compiled modules need of CPython to expose C fields as member descriptors,
# which Python code reads as fast as ``__slots__`` fields (declarations only, no module).

from cpython.object cimport PyTypeObject


cdef extern from "structmember.h":
    ctypedef struct PyMemberDef:
        const char *name
        int type
        Py_ssize_t offset
        int flags
        const char *doc
    int T_OBJECT_EX
    int READONLY

cdef extern from "Python.h":
    object PyDescr_NewMember(PyTypeObject *cls, PyMemberDef *member)
    void PyType_Modified(PyTypeObject *cls)
