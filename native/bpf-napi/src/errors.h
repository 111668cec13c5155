// bpf-napi: how failures of libbpf and bpf() calls become JavaScript errors.
//
// Every error the addon throws carries `code` (the errno name, e.g. 'ENOENT', or libbpf's own
// name such as 'LIBBPF_ERRNO__FORMAT'), `errno` (positive number), `syscall` (the libbpf or bpf()
// call that failed) and, where libbpf printed something, `log` (for a failed load: the verifier
// log). When JavaScript registered an error class with setErrorClass(), the addon constructs that
// class, so callers see the project's own error type.
#pragma once

#include <napi.h>

#include <string>

namespace bpf_napi {

// A failed call, captured off the main thread and turned into a JS error on it.
struct Failure {
  int err = 0;           // positive errno or LIBBPF_ERRNO__* value; 0 = no failure
  std::string syscall;   // e.g. "bpf_object__load", "bpf_map_update_batch"
  std::string detail;    // the object concerned: a path, a map or program name
  std::string log;       // libbpf's printed output, including the verifier log
  int64_t count = -1;    // batch operations: elements processed before the failure

  // Records a failure; `err` may be negative (libbpf's convention) or positive.
  void Set(int error, const char* call, std::string what = std::string()) {
    err = error < 0 ? -error : error;
    syscall = call;
    detail = std::move(what);
  }
  bool failed() const { return err != 0; }
};

// The errno name for err ("ENOENT"), libbpf's names for its own codes, "E<number>" otherwise.
std::string ErrnoName(int err);

// Builds the JS error for f (an instance of the registered error class, if any).
Napi::Error MakeError(Napi::Env env, const Failure& f);

// Throws MakeError(env, f) as a C++ exception (node-addon-api turns it into a JS throw).
[[noreturn]] void Throw(Napi::Env env, const Failure& f);

// Throws for the current errno after call failed on the main thread.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* call, std::string what = {});

// setErrorClass(ctor): `new ctor(message, { code, errno, syscall, log?, count? })` for every error.
Napi::Value SetErrorClass(const Napi::CallbackInfo& info);

}  // namespace bpf_napi
