// bpf-napi: per-environment state and the registration of each group of functions.
#pragma once

#include <napi.h>

namespace bpf_napi {

// State of one Node environment (main thread or worker); freed with the environment.
struct AddonData {
  Napi::FunctionReference error_class;  // set by setErrorClass(); empty means plain Error
};

AddonData& Data(Napi::Env env);

void InitObjectLoader(Napi::Env env, Napi::Object exports);
void InitTc(Napi::Env env, Napi::Object exports);
void InitMaps(Napi::Env env, Napi::Object exports);
void InitObjects(Napi::Env env, Napi::Object exports);
void InitRingBufferReader(Napi::Env env, Napi::Object exports);

}  // namespace bpf_napi
