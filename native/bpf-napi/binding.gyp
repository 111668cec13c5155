# node-gyp build of the bpf-napi addon: node-addon-api with C++ exceptions, linked against the
# distribution's libbpf (Debian libbpf-dev: -lbpf needs -lelf -lz when linked statically, and
# naming them is harmless when libbpf is shared).
{
  'targets': [
    {
      'target_name': 'bpf_napi',
      'sources': [
        'src/addon.cc',
        'src/errors.cc',
        'src/libbpf_log.cc',
        'src/object_loader.cc',
        'src/tc.cc',
        'src/maps.cc',
        'src/objects.cc',
        'src/ring_buffer_reader.cc',
      ],
      'dependencies': [
        "<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except",
      ],
      'defines': [ 'NAPI_VERSION=9', 'NODE_ADDON_API_DISABLE_DEPRECATED' ],
      'cflags_cc': [ '-std=c++17', '-Wall', '-Wextra', '-Wno-unused-parameter', '-Wno-missing-field-initializers' ],
      'libraries': [ '-lbpf', '-lelf', '-lz' ],
    },
  ],
}
