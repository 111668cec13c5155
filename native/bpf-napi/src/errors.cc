#include "errors.h"

#include <bpf/libbpf.h>
#include <string.h>

#include "addon.h"

namespace bpf_napi {

std::string ErrnoName(int err) {
  static const char* const libbpf_names[] = {
      "LIBBPF_ERRNO__LIBELF", "LIBBPF_ERRNO__FORMAT",  "LIBBPF_ERRNO__KVERSION",
      "__LIBBPF_ERRNO__ENDIAN", "LIBBPF_ERRNO__INTERNAL", "LIBBPF_ERRNO__RELOC",
      "LIBBPF_ERRNO__LOAD",   "LIBBPF_ERRNO__VERIFY",  "LIBBPF_ERRNO__PROG2BIG",
      "LIBBPF_ERRNO__KVER",   "LIBBPF_ERRNO__PROGTYPE", "LIBBPF_ERRNO__WRNGPID",
      "LIBBPF_ERRNO__INVSEQ", "LIBBPF_ERRNO__NLPARSE",
  };
  if (err >= __LIBBPF_ERRNO__START && err < __LIBBPF_ERRNO__END) return libbpf_names[err - __LIBBPF_ERRNO__START];
  if (err == 524) return "ENOTSUPP";  // kernel-internal "operation not supported" (no userspace name)
  const char* name = strerrorname_np(err);
  return name ? name : "E" + std::to_string(err);
}

static std::string Message(const Failure& f) {
  char reason[128];
  libbpf_strerror(f.err, reason, sizeof(reason));
  std::string message = f.syscall + " failed: " + reason;
  if (!f.detail.empty()) message += " (" + f.detail + ")";
  return message;
}

Napi::Error MakeError(Napi::Env env, const Failure& f) {
  Napi::Object details = Napi::Object::New(env);
  details.Set("code", ErrnoName(f.err));
  details.Set("errno", f.err);
  details.Set("syscall", f.syscall);
  if (!f.log.empty()) details.Set("log", f.log);
  if (f.count >= 0) details.Set("count", Napi::Number::New(env, static_cast<double>(f.count)));

  std::string message = Message(f);
  AddonData& data = Data(env);
  if (!data.error_class.IsEmpty()) {
    Napi::Object error = data.error_class.New({Napi::String::New(env, message), details});
    return Napi::Error(env, error);
  }
  Napi::Error error = Napi::Error::New(env, message);
  for (const auto& key : {"code", "errno", "syscall", "log", "count"}) {
    if (details.Has(key)) error.Set(key, details.Get(key));
  }
  return error;
}

void Throw(Napi::Env env, const Failure& f) { throw MakeError(env, f); }

void ThrowErrno(Napi::Env env, int err, const char* call, std::string what) {
  Failure f;
  f.Set(err, call, std::move(what));
  Throw(env, f);
}

Napi::Value SetErrorClass(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction()) throw Napi::TypeError::New(info.Env(), "setErrorClass: expected a constructor");
  Data(info.Env()).error_class = Napi::Persistent(info[0].As<Napi::Function>());
  return info.Env().Undefined();
}

}  // namespace bpf_napi
