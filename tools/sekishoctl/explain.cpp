#include "explain.hpp"

#include <cstdio>

namespace sekisho::ctl {
int cmd_explain(const std::vector<std::string>&) {
  fprintf(stderr, "sekishoctl: explain is not built yet\n");
  return 2;
}
}  // namespace sekisho::ctl
