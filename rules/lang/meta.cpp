#include "rules/lang/meta.hpp"

#include <cctype>
#include <cstdlib>

namespace sekisho::rules {

namespace {

enum class Tok { end, name, number, op, lparen, rparen, bad };

struct Lexer {
  std::string_view s;
  size_t i = 0;
  Tok tok = Tok::end;
  std::string_view text;
  double number = 0;

  void next() {
    while (i < s.size() && isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i >= s.size()) {
      tok = Tok::end;
      text = {};
      return;
    }
    size_t b = i;
    char c = s[i];
    if (isalpha(static_cast<unsigned char>(c)) || c == '_') {
      while (i < s.size() && (isalnum(static_cast<unsigned char>(s[i])) || s[i] == '_')) ++i;
      tok = Tok::name;
    } else if (isdigit(static_cast<unsigned char>(c)) || (c == '.' && i + 1 < s.size() && isdigit(static_cast<unsigned char>(s[i + 1])))) {
      while (i < s.size() && (isdigit(static_cast<unsigned char>(s[i])) || s[i] == '.')) ++i;
      tok = Tok::number;
      number = strtod(std::string(s.substr(b, i - b)).c_str(), nullptr);
    } else if (c == '(') {
      ++i;
      tok = Tok::lparen;
    } else if (c == ')') {
      ++i;
      tok = Tok::rparen;
    } else {
      static constexpr std::string_view two[] = {"&&", "||", "<=", ">=", "==", "!="};
      tok = Tok::bad;
      for (auto t : two) {
        if (s.substr(i, 2) == t) {
          i += 2;
          tok = Tok::op;
          break;
        }
      }
      if (tok == Tok::bad && std::string_view("!+-*/<>").find(c) != std::string_view::npos) {
        ++i;
        tok = Tok::op;
      } else if (tok == Tok::bad) {
        ++i;
      }
    }
    text = s.substr(b, i - b);
  }
};

struct Compiler {
  Lexer lx;
  const std::function<uint32_t(std::string_view)>* resolve = nullptr;
  std::vector<MetaInstr>* out = nullptr;
  std::vector<std::string>* names = nullptr;
  std::string error;
  int depth = 0, max_depth = 0, nesting = 0;

  void emit(MetaOp op, uint32_t rule = 0, double v = 0) {
    if (out) out->push_back(MetaInstr{op, rule, v});
    if (op == MetaOp::rule || op == MetaOp::constant) {
      if (++depth > max_depth) max_depth = depth;
    } else if (op != MetaOp::not_ && op != MetaOp::neg) {
      --depth;
    }
  }
  bool fail(std::string why) {
    if (error.empty()) error = std::move(why);
    return false;
  }
  bool is_op(std::string_view t) const { return lx.tok == Tok::op && lx.text == t; }

  bool unary() {
    if (++nesting > 200) return fail("meta expression nested too deeply");
    bool ok = unary_inner();
    --nesting;
    return ok;
  }
  bool unary_inner() {
    if (is_op("!")) {
      lx.next();
      if (!unary()) return false;
      emit(MetaOp::not_);
      return true;
    }
    if (is_op("-")) {
      lx.next();
      if (!unary()) return false;
      emit(MetaOp::neg);
      return true;
    }
    if (lx.tok == Tok::lparen) {
      lx.next();
      if (!expr()) return false;
      if (lx.tok != Tok::rparen) return fail("meta: missing ')'");
      lx.next();
      return true;
    }
    if (lx.tok == Tok::number) {
      emit(MetaOp::constant, 0, lx.number);
      lx.next();
      return true;
    }
    if (lx.tok == Tok::name) {
      std::string_view n = lx.text;
      lx.next();
      if (lx.tok == Tok::lparen) return fail("meta: function " + std::string(n) + "() is not supported");
      if (names) {
        bool seen = false;
        for (auto& x : *names) seen = seen || x == n;
        if (!seen) names->emplace_back(n);
      }
      emit(MetaOp::rule, resolve ? (*resolve)(n) : 0);
      return true;
    }
    if (lx.tok == Tok::end) return fail("meta: expression ends early");
    return fail("meta: unexpected '" + std::string(lx.text) + "'");
  }
  template <typename Next>
  bool binary(Next next, std::initializer_list<std::pair<std::string_view, MetaOp>> ops) {
    if (!(this->*next)()) return false;
    for (;;) {
      const MetaOp* found = nullptr;
      for (auto& p : ops)
        if (is_op(p.first)) found = &p.second;
      if (!found) return true;
      MetaOp op = *found;
      lx.next();
      if (!(this->*next)()) return false;
      emit(op);
    }
  }
  bool mul() { return binary(&Compiler::unary, {{"*", MetaOp::mul}, {"/", MetaOp::div}}); }
  bool add() { return binary(&Compiler::mul, {{"+", MetaOp::add}, {"-", MetaOp::sub}}); }
  bool rel() {
    return binary(&Compiler::add, {{"<", MetaOp::lt}, {">", MetaOp::gt}, {"<=", MetaOp::le}, {">=", MetaOp::ge}});
  }
  bool eq() { return binary(&Compiler::rel, {{"==", MetaOp::eq}, {"!=", MetaOp::ne}}); }
  bool and_() { return binary(&Compiler::eq, {{"&&", MetaOp::and_}}); }
  bool or_() { return binary(&Compiler::and_, {{"||", MetaOp::or_}}); }
  bool expr() {
    if (++nesting > 200) return fail("meta expression nested too deeply");
    bool ok = or_();
    --nesting;
    return ok;
  }

  bool run(std::string_view s) {
    lx.s = s;
    lx.next();
    if (lx.tok == Tok::end) return fail("meta: empty expression");
    if (!expr()) return false;
    if (lx.tok == Tok::bad) return fail("meta: unexpected '" + std::string(lx.text) + "'");
    if (lx.tok != Tok::end) return fail("meta: unexpected '" + std::string(lx.text) + "'");
    return true;
  }
};

}  // namespace

bool meta_names(std::string_view expr, std::vector<std::string>& names, std::string& error) {
  Compiler c;
  c.names = &names;
  if (!c.run(expr)) {
    error = c.error;
    return false;
  }
  return true;
}

bool compile_meta(std::string_view expr, const std::function<uint32_t(std::string_view)>& resolve,
                  std::vector<MetaInstr>& out, uint32_t& depth, std::string& error) {
  Compiler c;
  c.resolve = &resolve;
  c.out = &out;
  if (!c.run(expr)) {
    error = c.error;
    return false;
  }
  depth = static_cast<uint32_t>(c.max_depth);
  return true;
}

double eval_meta(const MetaInstr* code, size_t n, const double* values, double* stack) {
  size_t sp = 0;
  for (size_t i = 0; i < n; ++i) {
    const MetaInstr& in = code[i];
    switch (in.op) {
      case MetaOp::rule: stack[sp++] = values[in.rule]; continue;
      case MetaOp::constant: stack[sp++] = in.value; continue;
      case MetaOp::not_: stack[sp - 1] = stack[sp - 1] == 0 ? 1 : 0; continue;
      case MetaOp::neg: stack[sp - 1] = -stack[sp - 1]; continue;
      default: break;
    }
    double b = stack[--sp];
    double a = stack[sp - 1];
    double r = 0;
    switch (in.op) {
      case MetaOp::and_: r = a != 0 ? b : a; break;
      case MetaOp::or_: r = a != 0 ? a : b; break;
      case MetaOp::add: r = a + b; break;
      case MetaOp::sub: r = a - b; break;
      case MetaOp::mul: r = a * b; break;
      case MetaOp::div: r = b == 0 ? 0 : a / b; break;
      case MetaOp::lt: r = a < b; break;
      case MetaOp::gt: r = a > b; break;
      case MetaOp::le: r = a <= b; break;
      case MetaOp::ge: r = a >= b; break;
      case MetaOp::eq: r = a == b; break;
      case MetaOp::ne: r = a != b; break;
      default: break;
    }
    stack[sp - 1] = r;
  }
  return sp ? stack[sp - 1] : 0;
}

}  // namespace sekisho::rules
