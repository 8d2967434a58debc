#include "journal/time.hpp"

#include <cstdio>
#include <ctime>

namespace sekisho::journal {

namespace {

bool digits(std::string_view s, size_t pos, size_t n, int& out) {
  if (pos + n > s.size()) return false;
  out = 0;
  for (size_t i = pos; i < pos + n; ++i) {
    if (s[i] < '0' || s[i] > '9') return false;
    out = out * 10 + (s[i] - '0');
  }
  return true;
}

}  // namespace

std::optional<int64_t> parse_iso_time_us(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.ffffff](Z|+HH:MM|-HH:MM)
  int y, mo, d, h, mi, se;
  if (!digits(s, 0, 4, y) || s.size() < 19 || s[4] != '-' || !digits(s, 5, 2, mo) || s[7] != '-' ||
      !digits(s, 8, 2, d) || (s[10] != 'T' && s[10] != ' ') || !digits(s, 11, 2, h) || s[13] != ':' ||
      !digits(s, 14, 2, mi) || s[16] != ':' || !digits(s, 17, 2, se))
    return std::nullopt;
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || se > 60) return std::nullopt;
  size_t p = 19;
  int64_t frac_us = 0;
  if (p < s.size() && s[p] == '.') {
    ++p;
    int64_t scale = 100000;
    size_t start = p;
    while (p < s.size() && s[p] >= '0' && s[p] <= '9') {
      frac_us += (s[p] - '0') * scale;
      scale /= 10;
      ++p;
    }
    if (p == start) return std::nullopt;
  }
  int64_t offset_s = 0;
  if (p < s.size() && (s[p] == 'Z' || s[p] == 'z')) {
    ++p;
  } else if (p < s.size() && (s[p] == '+' || s[p] == '-')) {
    int oh, om;
    if (!digits(s, p + 1, 2, oh) || p + 3 >= s.size() || s[p + 3] != ':' || !digits(s, p + 4, 2, om))
      return std::nullopt;
    offset_s = (oh * 3600 + om * 60) * (s[p] == '+' ? 1 : -1);
    p += 6;
  } else {
    return std::nullopt;  // a time without zone is ambiguous
  }
  if (p != s.size()) return std::nullopt;
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = se;
  time_t t = timegm(&tm);
  return (int64_t(t) - offset_s) * 1000000 + frac_us;
}

std::string iso_time_us(int64_t us) {
  int64_t s = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  int64_t frac = us - s * 1000000;
  time_t t = time_t(s);
  struct tm tm {};
  gmtime_r(&t, &tm);
  char buf[64];
  snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
           tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<long long>(frac));
  return buf;
}

int64_t unix_us(double ts) {
  time_t s = time_t(ts);
  return int64_t(s) * 1000000 + int64_t(int((ts - double(s)) * 1e6));
}

}  // namespace sekisho::journal
