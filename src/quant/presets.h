// Named quantization schemes: compressed-tensors' PRESET_SCHEMES (W4A16, W4A16_ASYM, W8A8 / INT8, FP8,
// FP8_DYNAMIC, the WxAy integer family, W4AFP8, UNQUANTIZED) with the exact same arguments, plus NxD-style
// weight-only names `<int8|fp8_e4m3|fp8_e5m2>_<per_tensor|per_channel>_symmetric`.
//
// Note: compressed-tensors' W8A16 is int8 *group 128* (like every WxA16 preset); W8A8 is int8 per-channel
// weights with dynamic per-token int8 activations; FP8 is static per-tensor e4m3 weights and inputs;
// FP8_DYNAMIC is per-channel e4m3 weights with dynamic per-token e4m3 inputs.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "quant/scheme.h"

namespace lowbit {

// The names lowbit can quantize with, in a stable order (compressed-tensors' names in upper case, NxD names
// in lower case). Lookup is case-insensitive.
std::vector<std::string> preset_names();
bool is_preset(std::string_view name);

// The scheme for a preset name with the given targets. Throws lowbit::Error for an unknown name, listing
// the valid ones; compressed-tensors presets that lowbit cannot produce (NVFP4, MXFP*, FP8_BLOCK) get a
// message saying so.
QuantScheme preset_scheme(std::string_view name, std::vector<std::string> targets);

// --group-size: g > 0 makes the weights group-wise with group size g, -1 makes them per channel. Throws for
// a scheme without weights or for g == 0 / g < -1. Divisibility is checked per module when quantizing.
void override_group_size(QuantScheme& scheme, int group_size, std::string_view where);

}  // namespace lowbit
