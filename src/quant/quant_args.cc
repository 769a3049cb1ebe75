#include "quant/quant_args.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

#include "util/error.h"

namespace lowbit {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

float QuantArgs::q_min() const {
  return -q_max() - (type == QuantType::Int ? 1.0f : 0.0f);
}

float QuantArgs::q_max() const {
  if (type == QuantType::Int) return static_cast<float>((1 << (num_bits - 1)) - 1);
  return float_format == FloatFormat::E4M3 ? 448.0f : 57344.0f;
}

std::string_view to_string(QuantType t) {
  return t == QuantType::Int ? "int" : "float";
}

std::string_view to_string(QuantStrategy s) {
  switch (s) {
    case QuantStrategy::Tensor:
      return "tensor";
    case QuantStrategy::Channel:
      return "channel";
    case QuantStrategy::Group:
      return "group";
    case QuantStrategy::Block:
      return "block";
    case QuantStrategy::Token:
      return "token";
    case QuantStrategy::TensorGroup:
      return "tensor_group";
    case QuantStrategy::AttnHead:
      return "attn_head";
  }
  return "?";
}

std::string_view to_string(ActOrder a) {
  return a == ActOrder::Weight ? "weight" : "group";
}
std::string_view to_string(FloatFormat f) {
  return f == FloatFormat::E4M3 ? "e4m3" : "e5m2";
}

QuantType parse_quant_type(std::string_view s) {
  const std::string l = lower(s);
  if (l == "int") return QuantType::Int;
  if (l == "float") return QuantType::Float;
  fail("unknown quantization type '{}' (expected int or float)", s);
}

QuantStrategy parse_quant_strategy(std::string_view s) {
  const std::string l = lower(s);
  for (QuantStrategy q :
       {QuantStrategy::Tensor, QuantStrategy::Channel, QuantStrategy::Group, QuantStrategy::Block,
        QuantStrategy::Token, QuantStrategy::TensorGroup, QuantStrategy::AttnHead}) {
    if (l == to_string(q)) return q;
  }
  fail(
      "unknown quantization strategy '{}' (expected tensor, channel, group, block, token, tensor_group or "
      "attn_head)",
      s);
}

void validate_quant_args(QuantArgs& a, bool strategy_given, std::string_view where) {
  if (a.group_size && *a.group_size < -1) {
    fail("{}: invalid group size {}; use group_size > 0 for strategy 'group' and -1 for 'channel'", where,
         *a.group_size);
  }
  if (!strategy_given) {
    if (!a.group_size) {
      a.strategy = QuantStrategy::Tensor;
    } else if (*a.group_size > 0) {
      a.strategy = QuantStrategy::Group;
    } else if (*a.group_size == -1) {
      a.strategy = QuantStrategy::Channel;
    } else {
      fail("{}: invalid group size 0; use group_size > 0 for strategy 'group' and -1 for 'channel'", where);
    }
  }
  const bool grouped = a.strategy == QuantStrategy::Group || a.strategy == QuantStrategy::TensorGroup;
  if (a.strategy == QuantStrategy::Token && a.dynamic == DynamicMode::Static) {
    fail("{}: static token quantization is impossible; token strategy needs dynamic: true", where);
  }
  if (grouped && (!a.group_size || *a.group_size <= 0)) {
    fail("{}: strategy {} needs a positive group_size", where, to_string(a.strategy));
  }
  if (!grouped && a.group_size && *a.group_size > 0) {
    fail("{}: group_size {} needs strategy 'group' (got '{}')", where, *a.group_size, to_string(a.strategy));
  }
  if ((a.strategy == QuantStrategy::Block) != !a.block_structure.empty()) {
    fail("{}: block_structure and strategy 'block' go together", where);
  }
  if (!a.block_structure.empty() &&
      (a.block_structure.size() != 2 || a.block_structure[0] <= 0 || a.block_structure[1] <= 0)) {
    fail("{}: block_structure must be two positive ints [rows, cols]", where);
  }
  if (a.is_dynamic()) {
    const bool ok = a.strategy == QuantStrategy::Token || a.strategy == QuantStrategy::Tensor ||
                    a.strategy == QuantStrategy::TensorGroup || a.strategy == QuantStrategy::Group;
    if (!ok) fail("{}: dynamic quantization needs strategy token, tensor, group or tensor_group", where);
    if (a.dynamic == DynamicMode::Local && a.strategy != QuantStrategy::TensorGroup) {
      fail("{}: dynamic 'local' is only supported for strategy tensor_group", where);
    }
  }
  if (a.type == QuantType::Int && (a.num_bits < 1 || a.num_bits > 8)) {
    fail("{}: int quantization supports 1..8 bits, got {}", where, a.num_bits);
  }
  if (a.type == QuantType::Float && a.num_bits != 8 && a.num_bits != 6 && a.num_bits != 4) {
    fail("{}: float quantization supports 4, 6 or 8 bits, got {}", where, a.num_bits);
  }
  if (a.float_format == FloatFormat::E5M2 && (a.type != QuantType::Float || a.num_bits != 8)) {
    fail("{}: the e5m2 format needs type float and 8 bits", where);
  }
}

std::string describe(const QuantArgs& a) {
  std::string s = a.type == QuantType::Int ? fmt::format("int{}", a.num_bits)
                  : a.num_bits == 8        ? fmt::format("fp8_{}", to_string(a.float_format))
                                           : fmt::format("fp{}", a.num_bits);
  s += a.symmetric ? " sym" : " asym";
  if (a.strategy == QuantStrategy::Group || a.strategy == QuantStrategy::TensorGroup) {
    s += fmt::format(" {}{}", to_string(a.strategy), a.group_size.value_or(0));
  } else {
    s += fmt::format(" {}", to_string(a.strategy));
  }
  s += a.dynamic == DynamicMode::Static    ? " static"
       : a.dynamic == DynamicMode::Dynamic ? " dynamic"
                                           : " local";
  if (!a.observer.empty()) s += fmt::format(" observer={}", a.observer);
  if (a.actorder) s += fmt::format(" actorder={}", to_string(*a.actorder));
  return s;
}

bool operator==(const QuantArgs& a, const QuantArgs& b) {
  return a.num_bits == b.num_bits && a.type == b.type && a.symmetric == b.symmetric &&
         a.group_size == b.group_size && a.strategy == b.strategy && a.block_structure == b.block_structure &&
         a.dynamic == b.dynamic && a.actorder == b.actorder && a.scale_dtype == b.scale_dtype &&
         a.zp_dtype == b.zp_dtype && a.observer == b.observer &&
         a.observer_kwargs_json == b.observer_kwargs_json && a.float_format == b.float_format;
}

}  // namespace lowbit
