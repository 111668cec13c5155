// bpf-napi: capture of libbpf's printed output (warnings and the verifier log of a failed load).
//
// libbpf prints through one process-wide callback. The addon installs its own once; output goes
// to the LibbpfLogCapture active on the calling thread (each load runs on its own worker thread),
// else it is dropped, unless BPF_NAPI_DEBUG is set in the environment, which sends everything,
// debug output included, to stderr.
#pragma once

#include <string>

namespace bpf_napi {

void InstallLibbpfPrint();

// While alive, collects libbpf's warnings and info printed on this thread.
class LibbpfLogCapture {
 public:
  LibbpfLogCapture();
  ~LibbpfLogCapture();
  LibbpfLogCapture(const LibbpfLogCapture&) = delete;
  LibbpfLogCapture& operator=(const LibbpfLogCapture&) = delete;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  std::string* previous_;
};

}  // namespace bpf_napi
