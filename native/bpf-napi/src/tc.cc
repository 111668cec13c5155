// bpf-napi: tc (clsact) attachment of SCHED_CLS programs through libbpf's bpf_tc_* API, always in
// direct-action mode. A filter is named by (ifindex, attach point, handle, priority); attaching
// with replace = true swaps the program of an existing filter in one netlink request (no window
// without a program), which is how an agent restart takes over its own attachments.
#include <bpf/libbpf.h>
#include <errno.h>

#include "addon.h"
#include "args.h"
#include "errors.h"

namespace bpf_napi {
namespace {

bpf_tc_attach_point ArgAttachPoint(const Napi::CallbackInfo& info, size_t i) {
  std::string point = ArgString(info, i);
  if (point == "ingress") return BPF_TC_INGRESS;
  if (point == "egress") return BPF_TC_EGRESS;
  throw ArgError(info, i, "'ingress' or 'egress'");
}

// libbpf's DECLARE_LIBBPF_OPTS relies on C compound literals; these are the C++ equivalents.
bpf_tc_hook Hook(uint32_t ifindex, bpf_tc_attach_point point) {
  bpf_tc_hook hook = {};
  hook.sz = sizeof(hook);
  hook.ifindex = static_cast<int>(ifindex);
  hook.attach_point = point;
  return hook;
}

bpf_tc_opts Filter(uint32_t handle, uint32_t priority) {
  bpf_tc_opts opts = {};
  opts.sz = sizeof(opts);
  opts.handle = handle;
  opts.priority = priority;
  return opts;
}

std::string Where(uint32_t ifindex, const char* point) {
  return "ifindex " + std::to_string(ifindex) + " " + point;
}

// tcAttach(ifindex, 'ingress'|'egress', progFd, handle, priority, replace)
//   -> { handle, priority, progId }. handle/priority 0 let the kernel choose (not with replace).
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0);
  bpf_tc_attach_point point = ArgAttachPoint(info, 1);
  int prog_fd = ArgFd(info, 2);
  uint32_t handle = ArgU32(info, 3);
  uint32_t priority = ArgU32(info, 4);
  bool replace = ArgBool(info, 5);
  const char* name = point == BPF_TC_INGRESS ? "ingress" : "egress";

  bpf_tc_hook hook = Hook(ifindex, point);
  int err = bpf_tc_hook_create(&hook);  // the clsact qdisc; shared by both attach points
  if (err && err != -EEXIST) ThrowErrno(info.Env(), err, "bpf_tc_hook_create", Where(ifindex, name));

  bpf_tc_opts opts = Filter(handle, priority);
  opts.prog_fd = prog_fd;
  opts.flags = replace ? BPF_TC_F_REPLACE : 0;
  err = bpf_tc_attach(&hook, &opts);
  if (err) ThrowErrno(info.Env(), err, "bpf_tc_attach", Where(ifindex, name));

  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("handle", opts.handle);
  out.Set("priority", opts.priority);
  out.Set("progId", opts.prog_id);
  return out;
}

// tcDetach(ifindex, 'ingress'|'egress', handle, priority): removes that filter.
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0);
  bpf_tc_attach_point point = ArgAttachPoint(info, 1);
  bpf_tc_hook hook = Hook(ifindex, point);
  bpf_tc_opts opts = Filter(ArgU32(info, 2), ArgU32(info, 3));
  int err = bpf_tc_detach(&hook, &opts);
  if (err) ThrowErrno(info.Env(), err, "bpf_tc_detach", Where(ifindex, point == BPF_TC_INGRESS ? "ingress" : "egress"));
  return info.Env().Undefined();
}

// tcQuery(ifindex, 'ingress'|'egress', handle, priority) -> program id, or null if no such filter.
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0);
  bpf_tc_attach_point point = ArgAttachPoint(info, 1);
  bpf_tc_hook hook = Hook(ifindex, point);
  bpf_tc_opts opts = Filter(ArgU32(info, 2), ArgU32(info, 3));
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return info.Env().Null();  // no filter, or no clsact qdisc
  if (err) ThrowErrno(info.Env(), err, "bpf_tc_query", Where(ifindex, point == BPF_TC_INGRESS ? "ingress" : "egress"));
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// tcHookDestroy(ifindex): deletes the clsact qdisc and with it every filter on both points.
Napi::Value TcHookDestroy(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0);
  bpf_tc_hook hook = Hook(ifindex, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  int err = bpf_tc_hook_destroy(&hook);
  if (err) ThrowErrno(info.Env(), err, "bpf_tc_hook_destroy", "ifindex " + std::to_string(ifindex));
  return info.Env().Undefined();
}

}  // namespace

void InitTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach, "tcAttach"));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach, "tcDetach"));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery, "tcQuery"));
  exports.Set("tcHookDestroy", Napi::Function::New(env, TcHookDestroy, "tcHookDestroy"));
}

}  // namespace bpf_napi
