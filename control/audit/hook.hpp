// How a module reports an audited action without knowing the audit log:
// (actor, action, target, details, now_us). main.cpp binds it to
// AuditLog::append (audit.hpp); an empty Hook records nothing (unit tests
// of one module).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace sekisho::control::audit {

using Hook = std::function<void(const std::string& actor, const std::string& action, const std::string& target,
                                const nlohmann::json& details, int64_t now_us)>;

}  // namespace sekisho::control::audit
