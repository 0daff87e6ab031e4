#pragma once
// The one path from native errors to Python exceptions. Cython calls
// raise_native_error() (declared as `except +raise_native_error`) inside the
// catch block of every native call; it rethrows the in-flight exception to read
// its errc and message and asks a Python factory (tidelog.errors._from_native)
// for the matching exception object.
#include <Python.h>

#include <new>
#include <string>

#include "errors.h"

namespace tidelog {

inline int current_error(std::string* message) {
    try {
        throw;
    } catch (const error& e) {
        *message = e.what();
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

inline void raise_native_error() {
    std::string message;
    int code = current_error(&message);
    if (code == -1) {
        PyErr_NoMemory();
        return;
    }
    // A wait its interrupt callback ended: the callback left the exception
    // (KeyboardInterrupt, or whatever a signal handler raised) set.
    if (code == static_cast<int>(errc::interrupted) && PyErr_Occurred()) return;
    PyObject* text = PyUnicode_DecodeUTF8(message.data(), static_cast<Py_ssize_t>(message.size()), "replace");
    PyObject* exc = nullptr;
    if (text && error_factory()) exc = PyObject_CallFunction(error_factory(), "iO", code, text);
    if (exc) {
        PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc)), exc);
        Py_DECREF(exc);
    } else if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_RuntimeError, message.c_str());
    }
    Py_XDECREF(text);
}

}  // namespace tidelog
