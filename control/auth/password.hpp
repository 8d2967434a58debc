// Password hashing for the control plane's users: scrypt (OpenSSL's
// EVP_PBE_scrypt) with a 16-byte random salt per hash, the parameters
// stored with the hash so they can be raised later without breaking old
// ones:
//
//   $scrypt$ln=15,r=8,p=1$<salt, base64>$<32-byte key, base64>
//
// verify_password() recomputes the key with the stored salt and parameters
// and compares in constant time (CRYPTO_memcmp). Stored parameters are
// bounded (ln <= 20, r <= 32, p <= 16, work r*p*2^ln <= 2^26) so a crafted
// hash in the database cannot make a login take unbounded memory or time.
//
// Thread-safety: free functions, no shared state. Errors: hash_password()
// throws std::runtime_error when OpenSSL fails (out of memory, no entropy);
// verify_password() returns false for a malformed stored hash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace sekisho::control::auth {

struct ScryptParams {
  int log2_n = 15;  // N = 32768: 32 MiB with r = 8, about 0.1 s on one core
  int r = 8;
  int p = 1;
};

std::string hash_password(std::string_view password, const ScryptParams& params = {});
bool verify_password(std::string_view password, std::string_view stored);
// True when the stored hash uses parameters other than `params` (rehash on
// the next successful login).
bool needs_rehash(std::string_view stored, const ScryptParams& params);

// n random bytes from OpenSSL's CSPRNG (throws std::runtime_error on failure).
std::string random_bytes(size_t n);
// Base64url without padding (session ids, CSRF tokens, API tokens).
std::string base64url(std::string_view bytes);
// Lower-case hex SHA-256 (stored form of session ids and API tokens).
std::string sha256_hex(std::string_view bytes);
// Constant-time equality of two strings (length is not hidden).
bool equal_ct(std::string_view a, std::string_view b);

}  // namespace sekisho::control::auth
