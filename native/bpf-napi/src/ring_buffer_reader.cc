// bpf-napi: RingBufferReader delivers the records of a BPF ring buffer map to JavaScript.
//
//   const reader = new RingBufferReader(mapFd, (records, error) => { ... });
//   await reader.close();
//
// A thread waits in epoll on the ring buffer and on an eventfd (the stop signal), drains every
// available record (copied, so the kernel can reuse the space at once) and hands each drained
// batch to the JS callback through a thread-safe function as an array of Buffers. The queue
// towards JS is bounded: when JS falls behind, the thread waits, the ring fills, and the BPF side
// counts the records it cannot reserve. A poll failure is passed as (null, error) and ends the
// reader. The reader keeps the event loop alive until close() has resolved.
#include <bpf/libbpf.h>
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <thread>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace bpf_napi {
namespace {

constexpr size_t kMaxQueuedBatches = 16;

struct Batch {
  std::vector<std::vector<uint8_t>> records;
  Failure failure;
};

class RingBufferReader : public Napi::ObjectWrap<RingBufferReader> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "RingBufferReader", {InstanceMethod<&RingBufferReader::Close>("close")});
  }

  // new RingBufferReader(mapFd, onRecords)
  explicit RingBufferReader(const Napi::CallbackInfo& info) : Napi::ObjectWrap<RingBufferReader>(info) {
    int map_fd = ArgFd(info, 0);
    if (!info[1].IsFunction()) throw ArgError(info, 1, "a callback");
    Failure f;
    if (!Open(map_fd, f)) {
      FreeResources();
      Throw(info.Env(), f);
    }
    tsfn_ = Napi::ThreadSafeFunction::New(info.Env(), info[1].As<Napi::Function>(), "bpf-napi:RingBufferReader",
                                          kMaxQueuedBatches, 1, this, Finished, static_cast<void*>(nullptr));
    Ref();  // the thread uses this object until Finished()
    thread_ = std::thread([this] { Poll(); });
  }

  ~RingBufferReader() override { FreeResources(); }

 private:
  bool Open(int map_fd, Failure& f) {
    rb_ = ring_buffer__new(map_fd, OnSample, this, nullptr);
    if (!rb_) {
      f.Set(errno, "ring_buffer__new", "map fd " + std::to_string(map_fd));
      return false;
    }
    stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (stop_fd_ < 0) {
      f.Set(errno, "eventfd");
      return false;
    }
    epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) {
      f.Set(errno, "epoll_create1");
      return false;
    }
    for (int fd : {ring_buffer__epoll_fd(rb_), stop_fd_}) {
      epoll_event ev = {};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        f.Set(errno, "epoll_ctl");
        return false;
      }
    }
    return true;
  }

  void FreeResources() {
    if (rb_) ring_buffer__free(rb_);
    if (stop_fd_ >= 0) close(stop_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
    rb_ = nullptr;
    stop_fd_ = epoll_fd_ = -1;
  }

  // close() -> Promise<void>, resolved once the thread has stopped; later calls return the same.
  // (The promise is kept through a reference: a bare napi_value dies with the call's scope.)
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (closed_promise_.IsEmpty()) {
      Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
      closed_promise_ = Napi::Persistent(deferred.Promise().As<Napi::Object>());
      if (finished_) {
        deferred.Resolve(env.Undefined());  // the thread already ended after a poll failure
      } else {
        closing_.emplace(deferred);
        uint64_t one = 1;
        if (write(stop_fd_, &one, sizeof(one)) != sizeof(one)) ThrowErrno(env, errno, "write", "eventfd");
      }
    }
    return closed_promise_.Value();
  }

  static int OnSample(void* ctx, void* data, size_t size) {
    auto* self = static_cast<RingBufferReader*>(ctx);
    const uint8_t* bytes = static_cast<const uint8_t*>(data);
    self->pending_.emplace_back(bytes, bytes + size);
    return 0;
  }

  // The poll thread. Ends on the stop signal, on an error, or when JS is gone.
  void Poll() {
    epoll_event events[2];
    bool stop = false;
    while (!stop) {
      int n = epoll_wait(epoll_fd_, events, 2, -1);
      if (n < 0 && errno == EINTR) continue;
      auto batch = std::make_unique<Batch>();
      if (n < 0) {
        batch->failure.Set(errno, "epoll_wait");
      } else {
        for (int i = 0; i < n; i++) stop = stop || events[i].data.fd == stop_fd_;
        int err = ring_buffer__consume(rb_);  // drains what is there, even when stopping
        if (err < 0) batch->failure.Set(err, "ring_buffer__consume");
        batch->records.swap(pending_);
      }
      stop = stop || batch->failure.failed();
      if (batch->failure.failed() || !batch->records.empty()) {
        if (tsfn_.BlockingCall(batch.get(), CallJs) != napi_ok) break;
        batch.release();  // CallJs owns it now
      }
    }
    tsfn_.Release();
  }

  static void CallJs(Napi::Env env, Napi::Function callback, Batch* batch) {
    std::unique_ptr<Batch> owned(batch);
    if (env == nullptr) return;  // the environment is shutting down
    try {
      if (batch->failure.failed()) {
        callback.Call({env.Null(), MakeError(env, batch->failure).Value()});
        return;
      }
      Napi::Array records = Napi::Array::New(env, batch->records.size());
      for (size_t i = 0; i < batch->records.size(); i++) {
        const auto& r = batch->records[i];
        records.Set(i, Napi::Buffer<uint8_t>::Copy(env, r.data(), r.size()));
      }
      callback.Call({records});
    } catch (const Napi::Error& e) {
      e.ThrowAsJavaScriptException();  // reported as an uncaught exception
    }
  }

  // Runs on the main thread once the poll thread released the thread-safe function.
  static void Finished(Napi::Env env, void*, RingBufferReader* self) {
    self->thread_.join();
    self->FreeResources();
    self->finished_ = true;
    if (self->closing_) self->closing_->Resolve(env.Undefined());
    self->closing_.reset();
    self->Unref();
  }

  ring_buffer* rb_ = nullptr;
  int stop_fd_ = -1;
  int epoll_fd_ = -1;
  bool finished_ = false;                          // the thread has ended (main thread only)
  std::optional<Napi::Promise::Deferred> closing_;  // settles close(); set by the first close()
  Napi::ObjectReference closed_promise_;
  std::vector<std::vector<uint8_t>> pending_;  // poll thread only
  std::thread thread_;
  Napi::ThreadSafeFunction tsfn_;
};

}  // namespace

void InitRingBufferReader(Napi::Env env, Napi::Object exports) {
  exports.Set("RingBufferReader", RingBufferReader::Define(env));
}

}  // namespace bpf_napi
