// bpf-napi: runs blocking work (object load, batch map operations) on the libuv thread pool and
// settles a Promise with the result or with the error built from a Failure.
#pragma once

#include <napi.h>

#include <functional>
#include <vector>

#include "errors.h"

namespace bpf_napi {

class PromiseWorker : public Napi::AsyncWorker {
 public:
  using Work = std::function<void(Failure&)>;               // worker thread; no JS allowed
  using Settle = std::function<Napi::Value(Napi::Env)>;     // main thread, after success

  // Queues work; keep_alive holds JS values (Buffers the work reads or writes) until it settles.
  static Napi::Promise Start(Napi::Env env, const char* name, Work work, Settle settle,
                             const std::vector<Napi::Value>& keep_alive = {}) {
    auto* worker = new PromiseWorker(env, name, std::move(work), std::move(settle), keep_alive);
    Napi::Promise promise = worker->deferred_.Promise();
    worker->Napi::AsyncWorker::Queue();
    return promise;
  }

 protected:
  void Execute() override {
    work_(failure_);
    if (failure_.failed()) SetError(failure_.syscall);
  }
  void OnOK() override {
    Napi::HandleScope scope(Env());
    try {
      deferred_.Resolve(settle_(Env()));
    } catch (const Napi::Error& e) {
      deferred_.Reject(e.Value());
    }
  }
  void OnError(const Napi::Error&) override {
    Napi::HandleScope scope(Env());
    deferred_.Reject(MakeError(Env(), failure_).Value());
  }

 private:
  PromiseWorker(Napi::Env env, const char* name, Work work, Settle settle,
                const std::vector<Napi::Value>& keep_alive)
      : Napi::AsyncWorker(env, name), deferred_(Napi::Promise::Deferred::New(env)),
        work_(std::move(work)), settle_(std::move(settle)) {
    for (const Napi::Value& v : keep_alive) {
      if (v.IsObject()) keep_alive_.push_back(Napi::Persistent(v.As<Napi::Object>()));
    }
  }

  Napi::Promise::Deferred deferred_;
  Work work_;
  Settle settle_;
  Failure failure_;
  std::vector<Napi::ObjectReference> keep_alive_;
};

}  // namespace bpf_napi
