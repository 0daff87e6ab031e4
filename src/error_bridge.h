#pragma once
// The one path from native errors to Python exceptions. Cython calls
// raise_native_error() (declared as `except +raise_native_error`) inside the
// catch block of every native call; it rethrows the in-flight exception to read
// its errc, message and place (damage_place, for corruption a read met) and asks
// a Python factory (_core.pyx: _error_from_native, which names the errc and
// calls tidelog.errors._from_native) for the matching exception object.
#include <Python.h>

#include <new>
#include <string>

#include "errors.h"

namespace tidelog {

/// The in-flight exception's errc (0: not a tidelog::error, -1: out of memory),
/// message, and a copy of its damage place if it has one.
inline int current_error(std::string* message, damage_place* place, bool* has_place) {
    *has_place = false;
    try {
        throw;
    } catch (const error& e) {
        *message = e.what();
        if (const damage_place* p = e.place()) {
            *place = *p;
            *has_place = true;
        }
        return static_cast<int>(e.code());
    } catch (const std::bad_alloc&) {
        *message = "out of memory";
        return -1;
    } catch (const std::exception& e) {
        *message = e.what();
        return 0;
    } catch (...) {
        *message = "unknown native error";
        return 0;
    }
}

inline PyObject*& error_factory() {
    static PyObject* factory = nullptr;
    return factory;
}

inline void set_error_factory(PyObject* factory) {
    Py_XINCREF(factory);
    Py_XDECREF(error_factory());
    error_factory() = factory;
}

/// The place as a dict of the CorruptionError fields (paths decoded as the
/// rest of tidelog decodes them: UTF-8 with surrogateescape).
inline PyObject* damage_place_dict(const damage_place& p) {
    PyObject* topic = PyUnicode_DecodeUTF8(p.topic.data(), static_cast<Py_ssize_t>(p.topic.size()), "surrogateescape");
    PyObject* segment =
        PyUnicode_DecodeUTF8(p.segment.data(), static_cast<Py_ssize_t>(p.segment.size()), "surrogateescape");
    PyObject* out = nullptr;
    if (topic && segment) {
        out = Py_BuildValue("{s:O,s:i,s:O,s:K,s:L,s:L}", "topic", topic, "partition", p.partition, "segment", segment,
                            "position", static_cast<unsigned long long>(p.position), "start_offset",
                            static_cast<long long>(p.start_offset), "end_offset", static_cast<long long>(p.end_offset));
    }
    Py_XDECREF(topic);
    Py_XDECREF(segment);
    return out;
}

inline void raise_native_error() {
    std::string message;
    damage_place place;
    bool has_place = false;
    int code = current_error(&message, &place, &has_place);
    if (code == -1) {
        PyErr_NoMemory();
        return;
    }
    // A wait its interrupt callback ended: the callback left the exception
    // (KeyboardInterrupt, or whatever a signal handler raised) set.
    if (code == static_cast<int>(errc::interrupted) && PyErr_Occurred()) return;
    PyObject* text = PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
    PyObject* where = nullptr;
    if (has_place) {
        where = damage_place_dict(place);
    } else {
        where = Py_None;
        Py_INCREF(where);
    }
    PyObject* exc = nullptr;
    if (text && where && error_factory()) exc = PyObject_CallFunction(error_factory(), "iOO", code, text, where);
    if (exc) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
        Py_DECREF(exc);
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, message.c_str());
    }
    Py_XDECREF(text);
    Py_XDECREF(where);
}

}  // namespace tidelog
