#include "io/strict_json.h"

#include <set>
#include <vector>

#include "util/error.h"

namespace lowbit {

size_t find_invalid_utf8(std::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1fu;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0fu;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07u;
    } else {
      return i;  // a continuation byte without a lead byte, or 0xf8..0xff
    }
    if (n - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) return i;
      cp = (cp << 6) | (s[i + k] & 0x3fu);
    }
    static constexpr uint32_t kMinForLength[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMinForLength[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i;
    i += len;
  }
  return n;
}

nlohmann::json parse_strict_json(std::string_view text, const std::string& what, int max_depth) {
  if (const size_t bad = find_invalid_utf8(text); bad != text.size())
    fail("{} is not valid UTF-8 (byte {} at offset {})", what, static_cast<unsigned>(text[bad]) & 0xffu, bad);

  // One set of seen keys per open object, and the key each open object was stored under (for messages).
  std::vector<std::set<std::string>> seen_keys;
  std::vector<std::string> last_key;
  using Event = nlohmann::json::parse_event_t;
  auto check = [&](int depth, Event event, nlohmann::json& parsed) {
    switch (event) {
      case Event::object_start:
      case Event::array_start:
        // `depth` counts the containers already open around this one.
        if (depth + 1 > max_depth) fail("{} is nested deeper than {} levels", what, max_depth);
        if (event == Event::object_start) {
          seen_keys.emplace_back();
          last_key.emplace_back();
        }
        break;
      case Event::object_end:
        seen_keys.pop_back();
        last_key.pop_back();
        break;
      case Event::key: {
        auto key = parsed.get<std::string>();
        if (!seen_keys.back().insert(key).second) {
          if (seen_keys.size() == 1) fail("{} has a duplicate entry \"{}\"", what, key);
          fail("{}: entry \"{}\" has a duplicate field \"{}\"", what, last_key[last_key.size() - 2], key);
        }
        last_key.back() = std::move(key);
        break;
      }
      default:
        break;
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), check);
  } catch (const nlohmann::json::exception& e) {
    fail("{} is not valid JSON: {}", what, e.what());
  }
}

}  // namespace lowbit
