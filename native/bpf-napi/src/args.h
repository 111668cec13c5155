// bpf-napi: checked reading of call arguments. The JS layer validates and gives friendly errors;
// these checks only keep a wrong call from reaching the kernel (they throw TypeError).
#pragma once

#include <napi.h>

#include <cmath>
#include <string>

namespace bpf_napi {

inline Napi::TypeError ArgError(const Napi::CallbackInfo& info, size_t i, const char* what) {
  return Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + ": expected " + what);
}

// A non-negative integer that fits in uint32_t (fds, ifindexes, sizes, flags).
inline uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsNumber()) throw ArgError(info, i, "a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4294967295.0) || std::floor(v) != v) throw ArgError(info, i, "an integer in [0, 2^32)");
  return static_cast<uint32_t>(v);
}

inline int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  uint32_t fd = ArgU32(info, i);
  if (fd > 0x7fffffff) throw ArgError(info, i, "a file descriptor");
  return static_cast<int>(fd);
}

inline Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBuffer()) throw ArgError(info, i, "a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

// A Buffer, or null/undefined (returns false).
inline bool ArgOptionalBuffer(const Napi::CallbackInfo& info, size_t i, Napi::Buffer<uint8_t>* out) {
  if (info[i].IsNull() || info[i].IsUndefined()) return false;
  *out = ArgBuffer(info, i);
  return true;
}

inline std::string ArgString(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsString()) throw ArgError(info, i, "a string");
  return info[i].As<Napi::String>().Utf8Value();
}

inline bool ArgBool(const Napi::CallbackInfo& info, size_t i) {
  if (!info[i].IsBoolean()) throw ArgError(info, i, "a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

}  // namespace bpf_napi
