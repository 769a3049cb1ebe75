// parse_safetensors_header: turns header JSON into SafetensorsHeader, rejecting anything the rest of lowbit
// could trip over (the tensor data is then only ever touched within validated, non-overlapping ranges).
#include <algorithm>
#include <limits>
#include <tuple>
#include <vector>

#include "io/safetensors.h"
#include "io/strict_json.h"
#include "util/error.h"

namespace lowbit {

namespace {

using nlohmann::json;

// A header is {name: {dtype, shape: [..], data_offsets: [..]}}: three levels of containers.
constexpr int kMaxHeaderDepth = 3;

std::string describe(const json& value) {
  std::string text = value.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

SafetensorsHeader::Entry parse_entry(const std::string& file, const std::string& name, const json& value,
                                     uint64_t data_size) {
  auto bad = [&](const std::string& why) { fail("{}: tensor \"{}\": {}", file, name, why); };
  if (!value.is_object()) bad("entry is not a JSON object but " + describe(value));

  SafetensorsHeader::Entry entry;
  const auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) bad("missing or non-string \"dtype\"");
  if (!parse_dtype(dtype->get_ref<const std::string&>(), &entry.dtype))
    bad(fmt::format("unsupported dtype \"{}\"", dtype->get_ref<const std::string&>()));

  const auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) bad("missing or non-array \"shape\"");
  for (const json& dim : *shape) {
    // Non-negative integers only: nlohmann stores those as number_unsigned (negative ones are
    // number_integer, 2.0 or 1e3 are number_float).
    if (!dim.is_number_unsigned())
      bad("shape " + describe(*shape) + " has a dimension that is not a non-negative integer");
    const uint64_t d = dim.get<uint64_t>();
    if (d > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      bad("shape " + describe(*shape) + " is too large");
    entry.shape.push_back(static_cast<int64_t>(d));
  }
  uint64_t nbytes = 0;
  if (!tensor_nbytes(entry.dtype, entry.shape, &nbytes)) bad("shape " + describe(*shape) + " is too large");

  const auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 ||
      !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
    bad("\"data_offsets\" must be [begin, end] with non-negative integers");
  entry.begin = (*offsets)[0].get<uint64_t>();
  entry.end = (*offsets)[1].get<uint64_t>();
  if (entry.begin > entry.end)
    bad(fmt::format("data_offsets [{}, {}] has begin > end", entry.begin, entry.end));
  if (entry.end > data_size)
    bad(fmt::format("data_offsets [{}, {}] end beyond the data section ({} bytes)", entry.begin, entry.end,
                    data_size));
  if (entry.end - entry.begin != nbytes)
    bad(fmt::format("data_offsets [{}, {}] hold {} bytes but shape {} of {} needs {}", entry.begin, entry.end,
                    entry.end - entry.begin, describe(*shape), dtype_name(entry.dtype), nbytes));
  return entry;
}

void parse_metadata(const std::string& file, const json& value, SafetensorsHeader* header) {
  if (value.is_null()) return;  // the Python library accepts "__metadata__": null
  if (!value.is_object())
    fail("{}: \"__metadata__\" is not an object of strings but {}", file, describe(value));
  for (const auto& [key, item] : value.items()) {
    if (!item.is_string())
      fail("{}: \"__metadata__\" entry \"{}\" is not a string but {}", file, key, describe(item));
    header->metadata.emplace(key, item.get<std::string>());
  }
}

void check_no_overlap(const std::string& file, const SafetensorsHeader& header) {
  // Empty tensors occupy no bytes and cannot overlap anything.
  std::vector<std::tuple<uint64_t, uint64_t, const std::string*>> ranges;
  for (const auto& [name, entry] : header.tensors)
    if (entry.end > entry.begin) ranges.emplace_back(entry.begin, entry.end, &name);
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) {
    const auto& [begin, end, name] = ranges[i];
    const auto& [prev_begin, prev_end, prev_name] = ranges[i - 1];
    if (begin < prev_end)
      fail("{}: tensor \"{}\" data_offsets [{}, {}] overlap tensor \"{}\" [{}, {}]", file, *name, begin, end,
           *prev_name, prev_begin, prev_end);
  }
}

}  // namespace

SafetensorsHeader parse_safetensors_header(std::string_view json_text, uint64_t data_size,
                                           const std::string& file_name) {
  const json root = parse_strict_json(json_text, file_name + ": header", kMaxHeaderDepth);
  if (!root.is_object()) fail("{}: header is not a JSON object but {}", file_name, describe(root));
  SafetensorsHeader header;
  for (const auto& [name, value] : root.items()) {
    if (name == "__metadata__") {
      parse_metadata(file_name, value, &header);
      continue;
    }
    header.tensors.emplace(name, parse_entry(file_name, name, value, data_size));
  }
  check_no_overlap(file_name, header);
  return header;
}

}  // namespace lowbit
