// Strict JSON parsing for the files io reads (safetensors headers, index files). nlohmann::json silently
// keeps the last of two equal keys; a checkpoint with two tensors of the same name is ambiguous, so
// duplicates are rejected here, as are invalid UTF-8 and nesting deeper than the caller allows.
#pragma once

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>

namespace lowbit {

// Returns the offset of the first byte that is not part of a valid UTF-8 sequence (overlong forms, surrogates
// and code points above U+10FFFF are invalid), or text.size() when all of it is valid.
size_t find_invalid_utf8(std::string_view text);

// Parses `text` as JSON. Throws lowbit::Error starting with `what` (e.g. "model.safetensors: header") on
// invalid UTF-8, a syntax error, an object with a repeated key, or containers nested deeper than `max_depth`
// (the top-level value is depth 1).
nlohmann::json parse_strict_json(std::string_view text, const std::string& what, int max_depth);

}  // namespace lowbit
