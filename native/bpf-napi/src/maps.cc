// bpf-napi: map operations on map fds. Keys and values are Buffers laid out exactly as the kernel
// expects; a per-CPU map's value is round_up(value_size, 8) bytes per possible CPU. Every call
// checks the Buffer sizes against the map (one BPF_OBJ_GET_INFO_BY_FD) so that a wrong size is a
// TypeError, never a kernel write past the end of a Buffer.
//
// Single-element calls are synchronous (one bpf() call each). Batch calls run on the thread pool
// and return Promises; while one is in flight its Buffers must not be touched. Map types without
// kernel batch support (ENOTSUPP) are served by an element-by-element loop on the same thread.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <string.h>

#include <memory>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "promise_worker.h"

namespace bpf_napi {
namespace {

constexpr int kEnotsupp = 524;  // kernel-internal ENOTSUPP: the map type has no batch operation

bool IsPerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_ARRAY ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
}

bool NoBatchSupport(int err) { return err == kEnotsupp || err == EOPNOTSUPP; }

// libbpf's LIBBPF_OPTS relies on C compound literals; this is the C++ equivalent.
bpf_map_batch_opts BatchOpts(uint64_t elem_flags = 0) {
  bpf_map_batch_opts opts = {};
  opts.sz = sizeof(opts);
  opts.elem_flags = elem_flags;
  return opts;
}

// Sizes of one key and one value as user space exchanges them with the kernel.
struct MapShape {
  uint32_t key_size;
  size_t value_size;
};

MapShape Shape(Napi::Env env, int fd) {
  bpf_map_info info = {};
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) ThrowErrno(env, errno, "bpf_obj_get_info_by_fd", "fd " + std::to_string(fd));
  size_t value_size = info.value_size;
  if (IsPerCpu(info.type)) value_size = ((value_size + 7) / 8 * 8) * libbpf_num_possible_cpus();
  return {info.key_size, value_size};
}

void CheckSize(const Napi::CallbackInfo& info, size_t i, size_t actual, size_t expected, const char* what) {
  if (actual != expected)
    throw Napi::TypeError::New(info.Env(), "argument " + std::to_string(i) + ": " + what + " is " +
                                               std::to_string(actual) + " bytes, the map needs " +
                                               std::to_string(expected));
}

// mapCreate(type, keySize, valueSize, maxEntries, flags, name) -> fd
Napi::Value MapCreate(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 5);
  bpf_map_create_opts opts = {};
  opts.sz = sizeof(opts);
  opts.map_flags = ArgU32(info, 4);
  int fd = bpf_map_create(static_cast<bpf_map_type>(ArgU32(info, 0)), name.c_str(), ArgU32(info, 1), ArgU32(info, 2),
                          ArgU32(info, 3), &opts);
  if (fd < 0) ThrowErrno(info.Env(), errno, "bpf_map_create", name);
  return Napi::Number::New(info.Env(), fd);
}

// mapLookup(fd, key, valueOut, flags) -> true, or false when the key is absent
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  auto value = ArgBuffer(info, 2);
  MapShape shape = Shape(info.Env(), fd);
  CheckSize(info, 1, key.Length(), shape.key_size, "key");
  CheckSize(info, 2, value.Length(), shape.value_size, "value");
  if (bpf_map_lookup_elem_flags(fd, key.Data(), value.Data(), ArgU32(info, 3)) == 0)
    return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), errno, "bpf_map_lookup_elem");
}

// mapUpdate(fd, key, value, flags): flags BPF_ANY 0, BPF_NOEXIST 1, BPF_EXIST 2
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  auto value = ArgBuffer(info, 2);
  MapShape shape = Shape(info.Env(), fd);
  CheckSize(info, 1, key.Length(), shape.key_size, "key");
  CheckSize(info, 2, value.Length(), shape.value_size, "value");
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), ArgU32(info, 3)) != 0)
    ThrowErrno(info.Env(), errno, "bpf_map_update_elem");
  return info.Env().Undefined();
}

// mapDelete(fd, key) -> true, or false when the key was absent
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1);
  CheckSize(info, 1, key.Length(), Shape(info.Env(), fd).key_size, "key");
  if (bpf_map_delete_elem(fd, key.Data()) == 0) return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), errno, "bpf_map_delete_elem");
}

// mapGetNextKey(fd, key | null, nextKeyOut) -> true, or false after the last key
Napi::Value MapGetNextKey(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  Napi::Buffer<uint8_t> key;
  bool has_key = ArgOptionalBuffer(info, 1, &key);
  auto next = ArgBuffer(info, 2);
  uint32_t key_size = Shape(info.Env(), fd).key_size;
  if (has_key) CheckSize(info, 1, key.Length(), key_size, "key");
  CheckSize(info, 2, next.Length(), key_size, "next key");
  if (bpf_map_get_next_key(fd, has_key ? key.Data() : nullptr, next.Data()) == 0)
    return Napi::Boolean::New(info.Env(), true);
  if (errno == ENOENT) return Napi::Boolean::New(info.Env(), false);
  ThrowErrno(info.Env(), errno, "bpf_map_get_next_key");
}

// Element count of a batch: keys holds n keys and values (when given) n values.
uint32_t BatchCount(const Napi::CallbackInfo& info, const MapShape& shape, size_t keys_len, const size_t* values_len) {
  if (shape.key_size == 0 || keys_len % shape.key_size != 0)
    throw Napi::TypeError::New(info.Env(), "keys: length " + std::to_string(keys_len) +
                                               " is not a multiple of the key size " + std::to_string(shape.key_size));
  uint32_t n = keys_len / shape.key_size;
  if (values_len) CheckSize(info, 2, *values_len, n * shape.value_size, "values");
  return n;
}

// mapUpdateBatch(fd, keys, values, elemFlags) -> Promise<number of elements written>
Napi::Value MapUpdateBatch(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto keys = ArgBuffer(info, 1);
  auto values = ArgBuffer(info, 2);
  uint32_t elem_flags = ArgU32(info, 3);
  MapShape shape = Shape(info.Env(), fd);
  size_t values_len = values.Length();
  uint32_t n = BatchCount(info, shape, keys.Length(), &values_len);
  const uint8_t* k = keys.Data();
  const uint8_t* v = values.Data();
  auto done = std::make_shared<uint32_t>(0);
  return PromiseWorker::Start(
      info.Env(), "bpf-napi:mapUpdateBatch",
      [=](Failure& f) {
        uint32_t count = n;
        bpf_map_batch_opts opts = BatchOpts(elem_flags);
        if (n == 0) return;
        if (bpf_map_update_batch(fd, k, v, &count, &opts) == 0) {
          *done = count;
          return;
        }
        if (!NoBatchSupport(errno)) {
          f.Set(errno, "bpf_map_update_batch");
          f.count = count;
          return;
        }
        for (uint32_t i = 0; i < n; i++, *done = i) {
          if (bpf_map_update_elem(fd, k + i * shape.key_size, v + i * shape.value_size, elem_flags) != 0) {
            f.Set(errno, "bpf_map_update_elem");
            f.count = i;
            return;
          }
        }
      },
      [done](Napi::Env env) { return Napi::Number::New(env, *done); }, {keys, values});
}

// mapDeleteBatch(fd, keys) -> Promise<number of elements deleted>; absent keys are skipped.
Napi::Value MapDeleteBatch(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto keys = ArgBuffer(info, 1);
  MapShape shape = Shape(info.Env(), fd);
  uint32_t n = BatchCount(info, shape, keys.Length(), nullptr);
  const uint8_t* k = keys.Data();
  auto deleted = std::make_shared<uint32_t>(0);
  return PromiseWorker::Start(
      info.Env(), "bpf-napi:mapDeleteBatch",
      [=](Failure& f) {
        bpf_map_batch_opts opts = BatchOpts();
        uint32_t start = 0;
        bool batch = true;
        while (start < n) {
          const uint8_t* first = k + start * shape.key_size;
          uint32_t count = n - start;
          int err = 0;
          if (batch) {
            err = bpf_map_delete_batch(fd, first, &count, &opts) == 0 ? 0 : errno;
            if (NoBatchSupport(err)) {
              batch = false;
              continue;
            }
          } else {
            err = bpf_map_delete_elem(fd, first) == 0 ? 0 : errno;
            count = err ? 0 : 1;
          }
          *deleted += count;
          start += count;
          if (err == ENOENT) {
            start++;  // the key at `start` was already gone
          } else if (err) {
            f.Set(err, batch ? "bpf_map_delete_batch" : "bpf_map_delete_elem");
            f.count = *deleted;
            return;
          }
        }
      },
      [deleted](Napi::Env env) { return Napi::Number::New(env, *deleted); }, {keys});
}

// The position of a batch lookup between calls: the kernel's opaque token, or (for map types
// without batch lookup) the last key returned. Crosses to JS as a Buffer: [mode][bytes].
enum CursorMode : uint8_t { kKernelToken = 0, kLastKey = 1 };

// Fills keys/values from the map starting at `after` (null: the first key) by get_next_key.
uint32_t LookupByIteration(int fd, const MapShape& shape, const uint8_t* after, uint8_t* keys, uint8_t* values,
                           uint32_t capacity, bool* done, Failure& f) {
  std::vector<uint8_t> prev(after ? after : keys, after ? after + shape.key_size : keys);
  bool has_prev = after != nullptr;
  uint32_t n = 0;
  *done = false;
  while (n < capacity) {
    uint8_t* key = keys + n * shape.key_size;
    if (bpf_map_get_next_key(fd, has_prev ? prev.data() : nullptr, key) != 0) {
      if (errno == ENOENT) *done = true;
      else f.Set(errno, "bpf_map_get_next_key");
      return n;
    }
    prev.assign(key, key + shape.key_size);
    has_prev = true;
    if (bpf_map_lookup_elem(fd, key, values + n * shape.value_size) == 0) {
      n++;
    } else if (errno != ENOENT) {  // ENOENT: deleted since get_next_key; skip it
      f.Set(errno, "bpf_map_lookup_elem");
      return n;
    }
  }
  return n;
}

// mapLookupBatch(fd, cursor | null, keysOut, valuesOut) -> Promise<{ count, cursor | null }>
// Reads up to keysOut.length / keySize entries after cursor; cursor null in the result = done.
Napi::Value MapLookupBatch(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  Napi::Buffer<uint8_t> cursor;
  bool has_cursor = ArgOptionalBuffer(info, 1, &cursor);
  auto keys = ArgBuffer(info, 2);
  auto values = ArgBuffer(info, 3);
  MapShape shape = Shape(info.Env(), fd);
  if (keys.Length() < shape.key_size)
    throw Napi::TypeError::New(info.Env(), "keys: room for at least one key is needed");
  uint32_t capacity = keys.Length() / shape.key_size;
  CheckSize(info, 3, values.Length(), capacity * shape.value_size, "values");
  size_t token_size = shape.key_size < 8 ? 8 : shape.key_size;
  if (has_cursor && (cursor.Length() != token_size + 1 || cursor.Data()[0] > kLastKey))
    throw Napi::TypeError::New(info.Env(), "cursor: not a cursor of this map");

  struct State {
    std::vector<uint8_t> in, out;  // [mode][token]
    uint32_t count = 0;
    bool done = false;
  };
  auto state = std::make_shared<State>();
  if (has_cursor) state->in.assign(cursor.Data(), cursor.Data() + cursor.Length());
  state->out.assign(token_size + 1, 0);
  uint8_t* k = keys.Data();
  uint8_t* v = values.Data();
  return PromiseWorker::Start(
      info.Env(), "bpf-napi:mapLookupBatch",
      [=](Failure& f) {
        bool iterate = !state->in.empty() && state->in[0] == kLastKey;
        if (!iterate) {
          uint32_t count = capacity;
          bpf_map_batch_opts opts = BatchOpts();
          void* in = state->in.empty() ? nullptr : state->in.data() + 1;
          int err = bpf_map_lookup_batch(fd, in, state->out.data() + 1, k, v, &count, &opts) == 0 ? 0 : errno;
          if (err == 0 || err == ENOENT) {
            state->count = count;
            state->done = err == ENOENT;
            state->out[0] = kKernelToken;
            return;
          }
          if (!NoBatchSupport(err) || !state->in.empty()) {
            f.Set(err, "bpf_map_lookup_batch");
            return;
          }
        }
        const uint8_t* after = iterate ? state->in.data() + 1 : nullptr;
        state->count = LookupByIteration(fd, shape, after, k, v, capacity, &state->done, f);
        state->out[0] = kLastKey;
        if (state->count > 0) memcpy(state->out.data() + 1, k + (state->count - 1) * shape.key_size, shape.key_size);
        else if (after) memcpy(state->out.data() + 1, after, shape.key_size);
      },
      [state](Napi::Env env) {
        Napi::Object out = Napi::Object::New(env);
        out.Set("count", state->count);
        out.Set("cursor", state->done ? env.Null()
                                      : Napi::Buffer<uint8_t>::Copy(env, state->out.data(), state->out.size()).As<Napi::Value>());
        return out;
      },
      {keys, values});
}

}  // namespace

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapCreate", Napi::Function::New(env, MapCreate, "mapCreate"));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup, "mapLookup"));
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate, "mapUpdate"));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete, "mapDelete"));
  exports.Set("mapGetNextKey", Napi::Function::New(env, MapGetNextKey, "mapGetNextKey"));
  exports.Set("mapUpdateBatch", Napi::Function::New(env, MapUpdateBatch, "mapUpdateBatch"));
  exports.Set("mapDeleteBatch", Napi::Function::New(env, MapDeleteBatch, "mapDeleteBatch"));
  exports.Set("mapLookupBatch", Napi::Function::New(env, MapLookupBatch, "mapLookupBatch"));
}

}  // namespace bpf_napi
