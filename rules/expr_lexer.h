// The expression lexer: text in, tokens out, with byte offsets for errors.
// Used by the parser (expr_parser.cc) only.
#pragma once

#include <cctype>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <string_view>

#include "core/duration.h"

namespace medic::rules {

enum class Tok : uint8_t {
  kEnd,
  kIdent,
  kString,
  kNumber,
  kDuration,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kComma,
  kDot,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kError,
};

struct Token {
  Tok kind = Tok::kEnd;
  size_t offset = 0;
  std::string text;  // identifier, decoded string, or the literal as written
  double num = 0;
  int64_t ns = 0;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  Token next() {
    while (i_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[i_]))) ++i_;
    Token t;
    t.offset = i_;
    if (i_ >= s_.size()) return t;
    char c = s_[i_];
    auto one = [&](Tok k) {
      ++i_;
      t.kind = k;
      t.text = std::string(1, c);
      return t;
    };
    switch (c) {
      case '(':
        return one(Tok::kLParen);
      case ')':
        return one(Tok::kRParen);
      case '[':
        return one(Tok::kLBracket);
      case ']':
        return one(Tok::kRBracket);
      case ',':
        return one(Tok::kComma);
      case '.':
        return one(Tok::kDot);
      case '"':
      case '\'':
        return string_token(t, c);
      default:
        break;
    }
    if (c == '=' || c == '!' || c == '<' || c == '>' || c == '&' || c == '|') return op_token(t);
    if (std::isdigit(static_cast<unsigned char>(c)) ||
        (c == '-' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
      return number_token(t);
    }
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      size_t start = i_;
      while (i_ < s_.size() &&
             (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_' || s_[i_] == '-')) {
        ++i_;
      }
      t.kind = Tok::kIdent;
      t.text = std::string(s_.substr(start, i_ - start));
      return t;
    }
    t.kind = Tok::kError;
    t.text = "unexpected character '" + std::string(1, c) + "'";
    return t;
  }

 private:
  Token string_token(Token t, char quote) {
    ++i_;
    std::string out;
    while (i_ < s_.size() && s_[i_] != quote) {
      if (s_[i_] == '\\' && i_ + 1 < s_.size()) {
        ++i_;
        char e = s_[i_];
        // Regex escapes such as \d pass through untouched.
        if (e == quote || e == '\\') {
          out += e;
        } else if (e == 'n') {
          out += '\n';
        } else if (e == 't') {
          out += '\t';
        } else {
          out += '\\';
          out += e;
        }
      } else {
        out += s_[i_];
      }
      ++i_;
    }
    if (i_ >= s_.size()) {
      t.kind = Tok::kError;
      t.text = std::string("unterminated string: expected a closing ") + quote;
      return t;
    }
    ++i_;
    t.kind = Tok::kString;
    t.text = std::move(out);
    return t;
  }

  Token op_token(Token t) {
    char c = s_[i_];
    char n = i_ + 1 < s_.size() ? s_[i_ + 1] : '\0';
    auto take = [&](Tok k, size_t len) {
      t.kind = k;
      t.text = std::string(s_.substr(i_, len));
      i_ += len;
      return t;
    };
    if (c == '=' && n == '=') return take(Tok::kEq, 2);
    if (c == '!' && n == '=') return take(Tok::kNe, 2);
    if (c == '<' && n == '=') return take(Tok::kLe, 2);
    if (c == '>' && n == '=') return take(Tok::kGe, 2);
    if (c == '<') return take(Tok::kLt, 1);
    if (c == '>') return take(Tok::kGt, 1);
    t.kind = Tok::kError;
    if (c == '=')
      t.text = "'=' is not an operator: use == to compare";
    else if (c == '&')
      t.text = "'&&' is not an operator: use and";
    else if (c == '|')
      t.text = "'||' is not an operator: use or";
    else
      t.text = "'!' is not an operator: use not, or != to compare";
    return t;
  }

  Token number_token(Token t) {
    size_t start = i_;
    if (s_[i_] == '-') ++i_;
    while (i_ < s_.size() && (std::isdigit(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.'))
      ++i_;
    bool duration = i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]));
    while (i_ < s_.size() && std::isalnum(static_cast<unsigned char>(s_[i_]))) ++i_;
    t.text = std::string(s_.substr(start, i_ - start));
    if (duration) {
      auto d = parse_duration(t.text);
      if (!d.ok()) {
        t.kind = Tok::kError;
        t.text = d.status().message();
        return t;
      }
      t.kind = Tok::kDuration;
      t.ns = d->count();
      return t;
    }
    try {
      size_t used = 0;
      t.num = std::stod(t.text, &used);
      if (used != t.text.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
      t.kind = Tok::kError;
      t.text = "invalid number \"" + t.text + "\"";
      return t;
    }
    t.kind = Tok::kNumber;
    return t;
  }

  std::string_view s_;
  size_t i_ = 0;
};

}  // namespace medic::rules
