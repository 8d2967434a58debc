#include "dataplane/dpdk/worker_events.hpp"

namespace sekisho::dataplane {

std::shared_ptr<ContentRules> load_content_rules(const std::string& path, unsigned workers, uint64_t version,
                                                 std::string& err) {
  auto c = std::make_shared<ContentRules>();
  c->ruleset = match::Ruleset::load(path, err);
  if (!c->ruleset) return nullptr;
  for (unsigned i = 0; i < workers; ++i) {
    c->scratch.push_back(std::make_unique<match::Scratch>(*c->ruleset));
    if (!c->scratch.back()->ok()) {
      err = "cannot allocate a Hyperscan scratch for worker " + std::to_string(i);
      return nullptr;
    }
  }
  c->path = path;
  c->version = version;
  return c;
}

}  // namespace sekisho::dataplane
