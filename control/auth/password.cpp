#include "control/auth/password.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <charconv>
#include <stdexcept>
#include <vector>

namespace sekisho::control::auth {

namespace {

constexpr size_t kSaltBytes = 16;
constexpr size_t kKeyBytes = 32;

std::string b64(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), int(in.size()));
  out.resize(size_t(n));
  return out;
}

bool unb64(std::string_view in, std::string& out) {
  if (in.empty() || in.size() % 4 != 0 || in.size() > 1024) return false;
  out.assign(3 * in.size() / 4 + 1, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(in.data()), int(in.size()));
  if (n < 0) return false;
  size_t pad = in.ends_with("==") ? 2 : in.ends_with("=") ? 1 : 0;
  out.resize(size_t(n) - pad);
  return true;
}

bool derive(std::string_view password, std::string_view salt, const ScryptParams& p, size_t keylen,
            std::string& key) {
  uint64_t n = uint64_t(1) << p.log2_n;
  uint64_t maxmem = 128 * n * uint64_t(p.r) * uint64_t(p.p) + 128 * uint64_t(p.r) * uint64_t(p.p) + (1 << 20);
  key.assign(keylen, '\0');
  return EVP_PBE_scrypt(password.data(), password.size(), reinterpret_cast<const unsigned char*>(salt.data()),
                        salt.size(), n, uint64_t(p.r), uint64_t(p.p), maxmem,
                        reinterpret_cast<unsigned char*>(key.data()), keylen) == 1;
}

bool sane(const ScryptParams& p) {
  if (p.log2_n < 1 || p.log2_n > 20 || p.r < 1 || p.r > 32 || p.p < 1 || p.p > 16) return false;
  return (uint64_t(p.r) * uint64_t(p.p)) << p.log2_n <= (uint64_t(1) << 26);
}

bool take_int(std::string_view& s, std::string_view prefix, int& v) {
  if (!s.starts_with(prefix)) return false;
  s.remove_prefix(prefix.size());
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end == s.data()) return false;
  s.remove_prefix(size_t(end - s.data()));
  return true;
}

struct Parsed {
  ScryptParams params;
  std::string salt, key;
};

// "$scrypt$ln=15,r=8,p=1$SALT$KEY"
bool parse(std::string_view s, Parsed& out) {
  if (!s.starts_with("$scrypt$")) return false;
  s.remove_prefix(8);
  if (!take_int(s, "ln=", out.params.log2_n) || !take_int(s, ",r=", out.params.r) ||
      !take_int(s, ",p=", out.params.p) || !s.starts_with("$"))
    return false;
  s.remove_prefix(1);
  size_t d = s.find('$');
  if (d == std::string_view::npos) return false;
  if (!unb64(s.substr(0, d), out.salt) || !unb64(s.substr(d + 1), out.key)) return false;
  return sane(out.params) && out.salt.size() >= 8 && out.key.size() >= 16 && out.key.size() <= 64;
}

}  // namespace

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), int(n)) != 1)
    throw std::runtime_error("OpenSSL RAND_bytes failed");
  return out;
}

std::string base64url(std::string_view bytes) {
  std::string s = b64(bytes);
  while (!s.empty() && s.back() == '=') s.pop_back();
  for (char& c : s) c = c == '+' ? '-' : c == '/' ? '_' : c;
  return s;
}

std::string sha256_hex(std::string_view bytes) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), md);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : md) out += hex[c >> 4], out += hex[c & 15];
  return out;
}

bool equal_ct(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string hash_password(std::string_view password, const ScryptParams& params) {
  if (!sane(params)) throw std::runtime_error("scrypt parameters out of range");
  std::string salt = random_bytes(kSaltBytes), key;
  if (!derive(password, salt, params, kKeyBytes, key)) throw std::runtime_error("OpenSSL scrypt failed");
  return "$scrypt$ln=" + std::to_string(params.log2_n) + ",r=" + std::to_string(params.r) +
         ",p=" + std::to_string(params.p) + "$" + b64(salt) + "$" + b64(key);
}

bool verify_password(std::string_view password, std::string_view stored) {
  Parsed p;
  if (!parse(stored, p)) return false;
  std::string key;
  if (!derive(password, p.salt, p.params, p.key.size(), key)) return false;
  return CRYPTO_memcmp(key.data(), p.key.data(), key.size()) == 0;
}

bool needs_rehash(std::string_view stored, const ScryptParams& params) {
  Parsed p;
  if (!parse(stored, p)) return true;
  return p.params.log2_n != params.log2_n || p.params.r != params.r || p.params.p != params.p;
}

}  // namespace sekisho::control::auth
