// The admin pages' static files (control/web/assets/*), compiled into the
// binary by embed_assets.py at build time: nothing is read from disk while
// serving, and the pages cannot drift from the binary that serves them.
//
// Thread-safety: immutable after first use.
#pragma once

#include <string_view>
#include <vector>

namespace sekisho::control::web {

struct Asset {
  std::string_view name;          // file name, e.g. "log.js"
  std::string_view content_type;
  std::string_view bytes;
};

const std::vector<Asset>& assets();

}  // namespace sekisho::control::web
