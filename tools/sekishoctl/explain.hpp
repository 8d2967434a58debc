// sekishoctl rules explain: one message through the matching runtime.
#pragma once

#include <string>
#include <vector>

namespace sekisho::ctl {
int cmd_explain(const std::vector<std::string>& args);
}
