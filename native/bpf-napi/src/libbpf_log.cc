#include "libbpf_log.h"

#include <bpf/libbpf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include <mutex>

namespace bpf_napi {

static thread_local std::string* capture_target = nullptr;
static bool debug_to_stderr = false;

static int Print(enum libbpf_print_level level, const char* format, va_list args) {
  if (debug_to_stderr) {
    va_list copy;
    va_copy(copy, args);
    vfprintf(stderr, format, copy);
    va_end(copy);
  }
  if (!capture_target || level == LIBBPF_DEBUG) return 0;
  char buffer[1024];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(buffer, sizeof(buffer), format, copy);
  va_end(copy);
  if (n < 0) return 0;
  if (static_cast<size_t>(n) < sizeof(buffer)) {
    capture_target->append(buffer, n);
  } else {  // verifier logs come as one long string: format it again at full size
    std::string big(n + 1, '\0');
    vsnprintf(&big[0], big.size(), format, args);
    big.resize(n);
    capture_target->append(big);
  }
  return n;
}

void InstallLibbpfPrint() {
  static std::once_flag once;
  std::call_once(once, [] {
    debug_to_stderr = getenv("BPF_NAPI_DEBUG") != nullptr;
    libbpf_set_print(Print);
  });
}

LibbpfLogCapture::LibbpfLogCapture() : previous_(capture_target) { capture_target = &text_; }

LibbpfLogCapture::~LibbpfLogCapture() { capture_target = previous_; }

}  // namespace bpf_napi
