// bpf-napi: loadObject() opens an ELF object file, applies load-time settings, loads it into the
// kernel and returns duplicated fds of its programs and maps. The bpf_object itself is closed
// before the promise settles: callers own plain fds and close them explicitly; maps with
// `pinning = LIBBPF_PIN_BY_NAME` are pinned under (or reused from) options.pinRoot.
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "addon.h"
#include "args.h"
#include "errors.h"
#include "libbpf_log.h"
#include "promise_worker.h"

namespace bpf_napi {
namespace {

struct LoadRequest {
  std::string path;
  std::string pin_root;  // empty: libbpf's default (/sys/fs/bpf)
  std::vector<std::pair<std::string, std::vector<uint8_t>>> constants;
  std::vector<std::pair<std::string, uint32_t>> max_entries;
};

struct LoadedProgram {
  std::string name, section;
  uint32_t type = 0, id = 0;
  int fd = -1;
};

struct LoadedMap {
  std::string name, pin_path;
  uint32_t type = 0, id = 0, key_size = 0, value_size = 0, max_entries = 0, flags = 0;
  int fd = -1;
};

struct LoadResult {
  std::vector<LoadedProgram> programs;
  std::vector<LoadedMap> maps;
  std::string log;
  ~LoadResult() {  // fds not handed to JS are closed
    for (auto& p : programs) if (p.fd >= 0) close(p.fd);
    for (auto& m : maps) if (m.fd >= 0) close(m.fd);
  }
};

// Writes the `const volatile` globals named in constants into .rodata before load.
bool SetConstants(bpf_object* obj, const LoadRequest& req, Failure& f) {
  if (req.constants.empty()) return true;
  bpf_map* rodata = nullptr;
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    const char* name = bpf_map__name(map);
    size_t len = strlen(name);
    if (bpf_map__is_internal(map) && len >= 7 && strcmp(name + len - 7, ".rodata") == 0) rodata = map;
  }
  const btf* btf = bpf_object__btf(obj);
  int sec_id = btf ? btf__find_by_name_kind(btf, ".rodata", BTF_KIND_DATASEC) : -1;
  if (!rodata || sec_id < 0) {
    f.Set(ENOENT, "btf__find_by_name_kind", req.path + ": no .rodata section with BTF; nothing to set");
    return false;
  }
  size_t size = 0;
  const uint8_t* initial = static_cast<const uint8_t*>(bpf_map__initial_value(rodata, &size));
  std::vector<uint8_t> image(initial, initial + size);

  const btf_type* sec = btf__type_by_id(btf, sec_id);
  const btf_var_secinfo* vars = btf_var_secinfos(sec);
  for (const auto& [name, value] : req.constants) {
    const btf_var_secinfo* found = nullptr;
    for (int i = 0; i < btf_vlen(sec); i++) {
      const btf_type* var = btf__type_by_id(btf, vars[i].type);
      if (name == btf__name_by_offset(btf, var->name_off)) found = &vars[i];
    }
    if (!found) {
      f.Set(ENOENT, "btf__name_by_offset", "no const volatile '" + name + "' in " + req.path);
      return false;
    }
    if (found->size != value.size() || found->offset + found->size > size) {
      f.Set(EINVAL, "bpf_map__set_initial_value",
            "'" + name + "' is " + std::to_string(found->size) + " bytes, got " + std::to_string(value.size()));
      return false;
    }
    memcpy(image.data() + found->offset, value.data(), value.size());
  }
  int err = bpf_map__set_initial_value(rodata, image.data(), image.size());
  if (err) {
    f.Set(err, "bpf_map__set_initial_value", bpf_map__name(rodata));
    return false;
  }
  return true;
}

bool Dup(int fd, int* out, const char* what, Failure& f) {
  *out = fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (*out < 0) f.Set(errno, "fcntl", what);
  return *out >= 0;
}

bool CollectPrograms(bpf_object* obj, LoadResult& result, Failure& f) {
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) {
    LoadedProgram p;
    p.name = bpf_program__name(prog);
    p.section = bpf_program__section_name(prog);
    p.type = bpf_program__type(prog);
    if (!Dup(bpf_program__fd(prog), &p.fd, p.name.c_str(), f)) return false;
    result.programs.push_back(p);
    bpf_prog_info info = {};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(p.fd, &info, &len) == 0) result.programs.back().id = info.id;
  }
  return true;
}

bool CollectMaps(bpf_object* obj, LoadResult& result, Failure& f) {
  bpf_map* map;
  bpf_object__for_each_map(map, obj) {
    if (bpf_map__is_internal(map)) continue;  // .rodata/.bss belong to the programs
    LoadedMap m;
    m.name = bpf_map__name(map);
    if (bpf_map__pin_path(map)) m.pin_path = bpf_map__pin_path(map);
    if (!Dup(bpf_map__fd(map), &m.fd, m.name.c_str(), f)) return false;
    result.maps.push_back(m);
    bpf_map_info info = {};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(m.fd, &info, &len) != 0) {
      f.Set(errno, "bpf_obj_get_info_by_fd", m.name);
      return false;
    }
    LoadedMap& back = result.maps.back();
    back.type = info.type;
    back.id = info.id;
    back.key_size = info.key_size;
    back.value_size = info.value_size;
    back.max_entries = info.max_entries;
    back.flags = info.map_flags;
  }
  return true;
}

void Load(const LoadRequest& req, LoadResult& result, Failure& f) {
  LibbpfLogCapture capture;
  bpf_object_open_opts opts = {};
  opts.sz = sizeof(opts);
  if (!req.pin_root.empty()) opts.pin_root_path = req.pin_root.c_str();

  bpf_object* obj = bpf_object__open_file(req.path.c_str(), &opts);
  if (!obj) {
    f.Set(errno, "bpf_object__open_file", req.path);
    f.log = capture.text();
    return;
  }
  bool ok = true;
  for (const auto& [name, entries] : req.max_entries) {
    bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
    int err = map ? bpf_map__set_max_entries(map, entries) : -ENOENT;
    if (err) {
      f.Set(err, "bpf_map__set_max_entries", name);
      ok = false;
      break;
    }
  }
  ok = ok && SetConstants(obj, req, f);
  if (ok) {
    int err = bpf_object__load(obj);
    if (err) {
      f.Set(err, "bpf_object__load", req.path);
      ok = false;
    }
  }
  ok = ok && CollectPrograms(obj, result, f) && CollectMaps(obj, result, f);
  result.log = capture.text();
  if (!ok) f.log = capture.text();
  bpf_object__close(obj);
}

LoadRequest ParseRequest(const Napi::CallbackInfo& info) {
  LoadRequest req;
  req.path = ArgString(info, 0);
  if (!info[1].IsObject()) throw ArgError(info, 1, "an options object");
  Napi::Object options = info[1].As<Napi::Object>();
  Napi::Value pin_root = options.Get("pinRoot");
  if (pin_root.IsString()) req.pin_root = pin_root.As<Napi::String>().Utf8Value();

  Napi::Value constants = options.Get("constants");
  if (constants.IsObject()) {
    Napi::Object c = constants.As<Napi::Object>();
    Napi::Array names = c.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      Napi::Value v = c.Get(name);
      if (!v.IsBuffer()) throw Napi::TypeError::New(info.Env(), "constants." + name + ": expected a Buffer");
      auto buf = v.As<Napi::Buffer<uint8_t>>();
      req.constants.emplace_back(name, std::vector<uint8_t>(buf.Data(), buf.Data() + buf.Length()));
    }
  }
  Napi::Value max_entries = options.Get("maxEntries");
  if (max_entries.IsObject()) {
    Napi::Object m = max_entries.As<Napi::Object>();
    Napi::Array names = m.GetPropertyNames();
    for (uint32_t i = 0; i < names.Length(); i++) {
      std::string name = names.Get(i).As<Napi::String>().Utf8Value();
      Napi::Value v = m.Get(name);
      if (!v.IsNumber() || v.As<Napi::Number>().DoubleValue() < 1)
        throw Napi::TypeError::New(info.Env(), "maxEntries." + name + ": expected a positive number");
      req.max_entries.emplace_back(name, v.As<Napi::Number>().Uint32Value());
    }
  }
  return req;
}

Napi::Value ToJs(Napi::Env env, LoadResult& result) {
  Napi::Object out = Napi::Object::New(env);
  Napi::Array programs = Napi::Array::New(env, result.programs.size());
  for (size_t i = 0; i < result.programs.size(); i++) {
    LoadedProgram& p = result.programs[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", p.name);
    o.Set("section", p.section);
    o.Set("type", p.type);
    o.Set("id", p.id);
    o.Set("fd", p.fd);
    p.fd = -1;  // now owned by JS
    programs.Set(i, o);
  }
  Napi::Array maps = Napi::Array::New(env, result.maps.size());
  for (size_t i = 0; i < result.maps.size(); i++) {
    LoadedMap& m = result.maps[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("name", m.name);
    o.Set("type", m.type);
    o.Set("id", m.id);
    o.Set("keySize", m.key_size);
    o.Set("valueSize", m.value_size);
    o.Set("maxEntries", m.max_entries);
    o.Set("flags", m.flags);
    o.Set("pinPath", m.pin_path.empty() ? env.Null() : Napi::String::New(env, m.pin_path));
    o.Set("fd", m.fd);
    m.fd = -1;
    maps.Set(i, o);
  }
  out.Set("programs", programs);
  out.Set("maps", maps);
  out.Set("log", result.log);
  return out;
}

// loadObject(path, { pinRoot?, constants?: {name: Buffer}, maxEntries?: {name: number} })
//   -> Promise<{ programs, maps, log }>
Napi::Value LoadObject(const Napi::CallbackInfo& info) {
  auto req = std::make_shared<LoadRequest>(ParseRequest(info));
  auto result = std::make_shared<LoadResult>();
  return PromiseWorker::Start(
      info.Env(), "bpf-napi:loadObject", [req, result](Failure& f) { Load(*req, *result, f); },
      [result](Napi::Env env) { return ToJs(env, *result); });
}

}  // namespace

void InitObjectLoader(Napi::Env env, Napi::Object exports) {
  exports.Set("loadObject", Napi::Function::New(env, LoadObject, "loadObject"));
}

}  // namespace bpf_napi
