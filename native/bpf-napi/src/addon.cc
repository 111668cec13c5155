// bpf-napi: an N-API addon over libbpf with primitive functions only (numbers, strings, Buffers,
// fds as numbers). All meaning (map layouts, names, defaults, friendly errors) lives in
// src/datapath/bpf; the JS-facing surface is typed and documented in src/datapath/bpf/native.ts.
#include "addon.h"

#include "errors.h"
#include "libbpf_log.h"

namespace bpf_napi {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InstallLibbpfPrint();
  exports.Set("setErrorClass", Napi::Function::New(env, SetErrorClass, "setErrorClass"));
  InitObjectLoader(env, exports);
  InitTc(env, exports);
  InitMaps(env, exports);
  InitObjects(env, exports);
  InitRingBufferReader(env, exports);
  return exports;
}

}  // namespace bpf_napi

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return bpf_napi::Init(env, exports); }

NODE_API_MODULE(bpf_napi, InitModule)
