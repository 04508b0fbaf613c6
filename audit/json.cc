#include "audit/json.h"

#include "core/json.h"

namespace medic::audit::internal {

std::string json_string(std::string_view s) {
  std::string out;
  append_json_string(&out, s);
  return out;
}

std::string json_string_array(const std::vector<std::string>& items) {
  std::string out = "[";
  for (size_t i = 0; i < items.size(); ++i) {
    if (i) out += ",";
    out += json_string(items[i]);
  }
  return out + "]";
}

namespace {

void put_utf8(uint32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xe0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

bool parse_string(std::string_view t, size_t* i, std::string* out) {
  if (*i >= t.size() || t[*i] != '"') return false;
  ++*i;
  while (*i < t.size()) {
    char c = t[(*i)++];
    if (c == '"') return true;
    if (c != '\\') {
      out->push_back(c);
      continue;
    }
    if (*i >= t.size()) return false;
    char e = t[(*i)++];
    switch (e) {
      case '"': out->push_back('"'); break;
      case '\\': out->push_back('\\'); break;
      case '/': out->push_back('/'); break;
      case 'b': out->push_back('\b'); break;
      case 'f': out->push_back('\f'); break;
      case 'n': out->push_back('\n'); break;
      case 'r': out->push_back('\r'); break;
      case 't': out->push_back('\t'); break;
      case 'u': {
        if (*i + 4 > t.size()) return false;
        uint32_t v = 0;
        for (int k = 0; k < 4; ++k) {
          char h = t[(*i)++];
          v <<= 4;
          if (h >= '0' && h <= '9')
            v |= static_cast<uint32_t>(h - '0');
          else if (h >= 'a' && h <= 'f')
            v |= static_cast<uint32_t>(h - 'a' + 10);
          else if (h >= 'A' && h <= 'F')
            v |= static_cast<uint32_t>(h - 'A' + 10);
          else
            return false;
        }
        put_utf8(v, out);
        break;
      }
      default: return false;
    }
  }
  return false;
}

}  // namespace

bool parse_json_string_array(std::string_view t, std::vector<std::string>* out) {
  out->clear();
  size_t i = 0;
  if (t.empty() || t[i++] != '[') return false;
  if (i < t.size() && t[i] == ']') return i + 1 == t.size();
  while (true) {
    std::string item;
    if (!parse_string(t, &i, &item)) return false;
    out->push_back(std::move(item));
    if (i >= t.size()) return false;
    char c = t[i++];
    if (c == ']') return i == t.size();
    if (c != ',') return false;
  }
}

}  // namespace medic::audit::internal
