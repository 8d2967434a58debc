// meta expressions: Perl-style boolean and arithmetic expressions over other
// rules (SpamAssassin "meta"), compiled to a small stack program.
//
//   expr := or ; or := and ('||' and)* ; and := eq ('&&' eq)*
//   eq := rel (('=='|'!=') rel)* ; rel := add (('<'|'>'|'<='|'>=') add)*
//   add := mul (('+'|'-') mul)* ; mul := unary (('*'|'/') unary)*
//   unary := ('!'|'-') unary | '(' expr ')' | NUMBER | RULE_NAME
//
// A rule's value is its hit count (0 or 1, or the count for tflags
// multiple); a meta is true when its value is not 0. && and || return an
// operand's value as Perl does. Evaluation never allocates.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace sekisho::rules {

enum class MetaOp : uint8_t {
  rule = 0, constant = 1, not_ = 2, neg = 3, and_ = 4, or_ = 5, add = 6, sub = 7,
  mul = 8, div = 9, lt = 10, gt = 11, le = 12, ge = 13, eq = 14, ne = 15,
};

struct MetaInstr {
  MetaOp op = MetaOp::constant;
  uint32_t rule = 0;   // MetaOp::rule
  double value = 0;    // MetaOp::constant
};

// Names found in an expression, in order of first use (no duplicates).
bool meta_names(std::string_view expr, std::vector<std::string>& names, std::string& error);

// Compiles |expr|; |resolve| maps a rule name to its index. Sets |depth| to
// the stack depth the program needs.
bool compile_meta(std::string_view expr, const std::function<uint32_t(std::string_view)>& resolve,
                  std::vector<MetaInstr>& out, uint32_t& depth, std::string& error);

// |values| by rule index; |stack| has room for the program's depth.
double eval_meta(const MetaInstr* code, size_t n, const double* values, double* stack);

}  // namespace sekisho::rules
