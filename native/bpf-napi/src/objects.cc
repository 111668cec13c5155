// bpf-napi: fds of BPF objects (maps and programs): pinning in bpffs, opening pinned objects,
// kernel-side facts about them, closing them; plus a test run of a program on a packet.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <unistd.h>

#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace bpf_napi {
namespace {

// closeFd(fd): closes an fd this addon returned.
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  if (close(fd) != 0) ThrowErrno(info.Env(), errno, "close", "fd " + std::to_string(fd));
  return info.Env().Undefined();
}

// objPin(fd, path): pins a map or program at path (in a bpffs).
Napi::Value ObjPin(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  std::string path = ArgString(info, 1);
  if (bpf_obj_pin(fd, path.c_str()) != 0) ThrowErrno(info.Env(), errno, "bpf_obj_pin", path);
  return info.Env().Undefined();
}

// objGet(path) -> fd of the pinned map or program.
Napi::Value ObjGet(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) ThrowErrno(info.Env(), errno, "bpf_obj_get", path);
  return Napi::Number::New(info.Env(), fd);
}

// objUnpin(path): removes a pin (the object lives on while other references exist).
Napi::Value ObjUnpin(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0);
  if (unlink(path.c_str()) != 0) ThrowErrno(info.Env(), errno, "unlink", path);
  return info.Env().Undefined();
}

// mapInfo(fd) -> { type, id, keySize, valueSize, maxEntries, flags, name }
Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  bpf_map_info m = {};
  uint32_t len = sizeof(m);
  if (bpf_obj_get_info_by_fd(fd, &m, &len) != 0) ThrowErrno(info.Env(), errno, "bpf_obj_get_info_by_fd", "map fd " + std::to_string(fd));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("type", m.type);
  out.Set("id", m.id);
  out.Set("keySize", m.key_size);
  out.Set("valueSize", m.value_size);
  out.Set("maxEntries", m.max_entries);
  out.Set("flags", m.map_flags);
  out.Set("name", m.name);
  return out;
}

// progInfo(fd) -> { type, id, name, tag }
Napi::Value ProgInfo(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  bpf_prog_info p = {};
  uint32_t len = sizeof(p);
  if (bpf_obj_get_info_by_fd(fd, &p, &len) != 0) ThrowErrno(info.Env(), errno, "bpf_obj_get_info_by_fd", "program fd " + std::to_string(fd));
  char tag[2 * BPF_TAG_SIZE + 1];
  for (int i = 0; i < BPF_TAG_SIZE; i++) snprintf(tag + 2 * i, 3, "%02x", p.tag[i]);
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("type", p.type);
  out.Set("id", p.id);
  out.Set("name", p.name);
  out.Set("tag", tag);
  return out;
}

// progGetFdById(id) -> fd of the loaded program with that id (e.g. the one a tc filter runs).
Napi::Value ProgGetFdById(const Napi::CallbackInfo& info) {
  uint32_t id = ArgU32(info, 0);
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) ThrowErrno(info.Env(), errno, "bpf_prog_get_fd_by_id", "program id " + std::to_string(id));
  return Napi::Number::New(info.Env(), fd);
}

// progTestRun(fd, packet, repeat) -> { retval, durationNs, packetOut }: BPF_PROG_TEST_RUN.
Napi::Value ProgTestRun(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto packet = ArgBuffer(info, 1);
  std::vector<uint8_t> out(packet.Length() + 256);
  bpf_test_run_opts opts = {};
  opts.sz = sizeof(opts);
  opts.data_in = packet.Data();
  opts.data_size_in = packet.Length();
  opts.data_out = out.data();
  opts.data_size_out = out.size();
  opts.repeat = ArgU32(info, 2);
  if (bpf_prog_test_run_opts(fd, &opts) != 0) ThrowErrno(info.Env(), errno, "bpf_prog_test_run_opts");
  Napi::Object result = Napi::Object::New(info.Env());
  result.Set("retval", opts.retval);
  result.Set("durationNs", opts.duration);
  result.Set("packetOut", Napi::Buffer<uint8_t>::Copy(info.Env(), out.data(), opts.data_size_out));
  return result;
}

// numPossibleCpus() -> how many value slots a per-CPU map has per key.
Napi::Value NumPossibleCpus(const Napi::CallbackInfo& info) {
  int n = libbpf_num_possible_cpus();
  if (n < 0) ThrowErrno(info.Env(), n, "libbpf_num_possible_cpus");
  return Napi::Number::New(info.Env(), n);
}

}  // namespace

void InitObjects(Napi::Env env, Napi::Object exports) {
  exports.Set("closeFd", Napi::Function::New(env, CloseFd, "closeFd"));
  exports.Set("objPin", Napi::Function::New(env, ObjPin, "objPin"));
  exports.Set("objGet", Napi::Function::New(env, ObjGet, "objGet"));
  exports.Set("objUnpin", Napi::Function::New(env, ObjUnpin, "objUnpin"));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo, "mapInfo"));
  exports.Set("progInfo", Napi::Function::New(env, ProgInfo, "progInfo"));
  exports.Set("progGetFdById", Napi::Function::New(env, ProgGetFdById, "progGetFdById"));
  exports.Set("progTestRun", Napi::Function::New(env, ProgTestRun, "progTestRun"));
  exports.Set("numPossibleCpus", Napi::Function::New(env, NumPossibleCpus, "numPossibleCpus"));
}

}  // namespace bpf_napi
