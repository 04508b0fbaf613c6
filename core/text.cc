#include "core/text.h"

#include <algorithm>
#include <vector>

namespace medic {

size_t edit_distance(std::string_view a, std::string_view b) {
  // Three rows of the distance table: two back (for swaps), one back, this one.
  std::vector<size_t> back2(b.size() + 1), prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        cur[j] = std::min(cur[j], back2[j - 2] + 1);
      }
    }
    std::swap(back2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

namespace {

bool extends_at_word_boundary(std::string_view name, std::string_view known) {
  if (name.empty() || known.size() <= name.size() || known.substr(0, name.size()) != name) {
    return false;
  }
  const char next = known[name.size()];
  return next == '_' || next == '.' || next == '-';
}

}  // namespace

std::string closest_name(std::string_view name, const std::vector<std::string_view>& known) {
  if (std::find(known.begin(), known.end(), name) != known.end()) return "";
  const size_t limit = std::clamp<size_t>(name.size() / 3, 1, 3);
  std::string_view best;
  size_t best_d = limit + 1;
  for (auto k : known) {
    const size_t d = edit_distance(name, k);
    if (d < best_d) {
      best_d = d;
      best = k;
    }
  }
  if (!best.empty()) return std::string(best);
  std::string_view longer;
  for (auto k : known) {
    if (!extends_at_word_boundary(name, k)) continue;
    if (!longer.empty()) return "";  // several: none is the one meant
    longer = k;
  }
  return std::string(longer);
}

std::string did_you_mean(std::string_view name, const std::vector<std::string_view>& known) {
  std::string best = closest_name(name, known);
  return best.empty() ? "" : "; did you mean " + best + "?";
}

std::string unknown_name(std::string_view what, std::string_view name,
                         const std::vector<std::string_view>& known) {
  std::string out = "unknown " + std::string(what) + " \"" + std::string(name) + "\"";
  std::string hint = did_you_mean(name, known);
  if (!hint.empty()) return out + hint;
  return out + " (expected " + join_names(known) + ")";
}

std::string join_names(const std::vector<std::string_view>& names, std::string_view last) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += i + 1 == names.size() ? last : std::string_view(", ");
    out += names[i];
  }
  return out;
}

size_t decode_utf8(std::string_view s, size_t i, uint32_t* code_point) {
  const size_t n = s.size();
  auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  auto cont = [&](size_t k, unsigned char lo = 0x80, unsigned char hi = 0xBF) {
    return k < n && byte(k) >= lo && byte(k) <= hi;
  };
  if (i >= n) return 0;
  const unsigned char c = byte(i);
  if (c < 0x80) {
    *code_point = c;
    return 1;
  }
  if (c >= 0xC2 && c <= 0xDF && cont(i + 1)) {
    *code_point = (c & 0x1Fu) << 6 | (byte(i + 1) & 0x3Fu);
    return 2;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned char lo = c == 0xE0 ? 0xA0 : 0x80;  // no overlong forms
    const unsigned char hi = c == 0xED ? 0x9F : 0xBF;  // no surrogates
    if (!cont(i + 1, lo, hi) || !cont(i + 2)) return 0;
    *code_point = (c & 0x0Fu) << 12 | (byte(i + 1) & 0x3Fu) << 6 | (byte(i + 2) & 0x3Fu);
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned char lo = c == 0xF0 ? 0x90 : 0x80;
    const unsigned char hi = c == 0xF4 ? 0x8F : 0xBF;  // nothing beyond U+10FFFF
    if (!cont(i + 1, lo, hi) || !cont(i + 2) || !cont(i + 3)) return 0;
    *code_point = (c & 0x07u) << 18 | (byte(i + 1) & 0x3Fu) << 12 | (byte(i + 2) & 0x3Fu) << 6 |
                  (byte(i + 3) & 0x3Fu);
    return 4;
  }
  return 0;
}

std::string vm_words(const std::string& id, const std::string& name) {
  if (id.empty()) return "-";
  if (name.empty() || name == id) return id;
  return name + " (" + id + ")";
}

bool is_vm_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

}  // namespace medic
