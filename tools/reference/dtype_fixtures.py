#!/usr/bin/env python3
"""Golden tables for lowbit's scalar dtype conversions (src/io/dtype.cc), produced with torch.

Usage:  /work/venv/bin/python tools/reference/dtype_fixtures.py [--out tests/fixtures/dtype]

Writes little-endian binary files (described in tests/fixtures/dtype/README.md):
  decode_<fmt>.bin   one uint32 (the float32 bits torch produces) per code, for every code of the format
                     (256 for fp8, 65536 for bf16/f16).
  encode_<fmt>.bin   uint32 count N, N uint32 float32 inputs, then N output codes (uint16 for bf16/f16,
                     uint8 for fp8) as torch produces them.

fp8 encoding in lowbit saturates (like compressed-tensors, which clamps to the finfo range before casting),
while torch's own `.to(float8_*)` turns out-of-range values into NaN (e4m3fn) or inf (e5m2). The golden
outputs for fp8 are therefore `x.clamp(finfo.min, finfo.max).to(fp8)`, stored next to the unclamped input x.

NaN bit patterns are not meaningful and torch is not consistent about them (its scalar and vectorized CPU
paths differ), so the C++ test only requires NaN-ness where torch produces a NaN for bf16/f16; fp8 NaN codes
(0x7f/0xff) are compared exactly because torch preserves the sign there.
"""

import argparse
import pathlib
import struct

import numpy as np
import torch

FORMATS = {
    # name: (torch dtype, code numpy dtype, clamp before cast)
    "bf16": (torch.bfloat16, np.uint16, False),
    "f16": (torch.float16, np.uint16, False),
    "e4m3": (torch.float8_e4m3fn, np.uint8, True),
    "e5m2": (torch.float8_e5m2, np.uint8, True),
}


def code_torch_int_dtype(np_dtype):
    return torch.int16 if np_dtype == np.uint16 else torch.uint8


def decode_table(fmt):
    tdtype, np_code, _ = FORMATS[fmt]
    n = 1 << (8 * np.dtype(np_code).itemsize)
    codes = np.arange(n, dtype=np.uint64).astype(np_code)
    view_as = np.int16 if np_code == np.uint16 else np.uint8
    t = torch.from_numpy(codes.view(view_as).copy()).view(tdtype)
    return t.float().numpy().view(np.uint32)


def encode(fmt, x_bits):
    tdtype, np_code, clamp = FORMATS[fmt]
    x = torch.from_numpy(x_bits.view(np.float32).copy())
    if clamp:
        info = torch.finfo(tdtype)
        x = x.clamp(info.min, info.max)
    out = x.to(tdtype).view(code_torch_int_dtype(np_code)).numpy()
    return out.view(np_code)


def representable_f32(fmt):
    """Every finite value of the format as float32 bits (positive and negative)."""
    table = decode_table(fmt)
    values = table.view(np.float32)
    return table[np.isfinite(values)]


def encode_inputs(fmt, rng, n_random, n_ties):
    """float32 inputs that exercise rounding: exact values, exact ties between neighbours, one float32 ulp
    either side of every tie, subnormals, the overflow boundary, specials and random values."""
    exact = np.unique(representable_f32(fmt).view(np.float32).astype(np.float64))
    exact = exact[np.isfinite(exact)]
    mids = (exact[:-1] + exact[1:]) / 2  # exact in float64, and exactly representable in float32
    if len(mids) > n_ties:
        mids = rng.choice(mids, n_ties, replace=False)
        exact = rng.choice(exact, n_ties, replace=False)
    mids32 = mids.astype(np.float32)
    assert np.all(mids32.astype(np.float64) == mids), "tie points must be exact float32 values"
    below = np.nextafter(mids32, np.float32(-np.inf))
    above = np.nextafter(mids32, np.float32(np.inf))

    info = torch.finfo(FORMATS[fmt][0])
    top = exact[exact > 0][-2:]  # the two largest finite values
    overflow_tie = np.float32(top[1] + (top[1] - top[0]) / 2)  # the first value that rounds past max
    overflow = np.array([overflow_tie, np.nextafter(overflow_tie, np.float32(0)),
                         np.nextafter(overflow_tie, np.float32(np.inf))], dtype=np.float32)
    edges = np.array(
        [0.0, -0.0, np.inf, -np.inf, np.nan, -np.nan, info.max, -info.max, info.tiny, -info.tiny,
         info.smallest_normal, info.max * 1.03125, info.max * 1.0625, info.max * 2, 3.4e38, -3.4e38,
         1e-45, -1e-45, 1.17e-38, 1e-30],
        dtype=np.float32)
    nan_bits = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFF800001, 0x7FA00000, 0x7FFFFFFF],
                        dtype=np.uint32).view(np.float32)

    # Random values over the whole float32 range (random bits), around the format's range (log-uniform),
    # and float32 subnormals.
    rand_bits = rng.integers(0, 1 << 32, n_random, dtype=np.uint64).astype(np.uint32).view(np.float32)
    lo = np.log2(float(info.smallest_normal)) - 12
    hi = np.log2(float(info.max)) + 2
    scaled = (rng.choice([-1.0, 1.0], n_random) * np.exp2(rng.uniform(lo, hi, n_random))).astype(np.float32)
    subnormal_bits = rng.integers(1, 1 << 23, 256, dtype=np.uint64).astype(np.uint32).view(np.float32)

    xs = np.concatenate([exact.astype(np.float32), mids32, below, above, edges, overflow, -overflow,
                         nan_bits,
                         rand_bits, scaled, subnormal_bits])
    return xs.view(np.uint32)


def write_decode(out_dir, fmt):
    table = decode_table(fmt).astype("<u4")
    (out_dir / f"decode_{fmt}.bin").write_bytes(table.tobytes())
    return table.nbytes


def write_encode(out_dir, fmt, rng, n_random, n_ties):
    x_bits = encode_inputs(fmt, rng, n_random, n_ties)
    codes = encode(fmt, x_bits)
    if fmt == "f16":
        # Independent cross-check of torch's float16 rounding with numpy (both round to nearest even).
        xs = x_bits.view(np.float32)
        ref = xs.astype(np.float16).view(np.uint16)
        finite = ~np.isnan(xs)
        assert np.array_equal(ref[finite], codes[finite]), "numpy and torch disagree on float16 rounding"
    blob = struct.pack("<I", len(x_bits)) + x_bits.astype("<u4").tobytes()
    blob += codes.astype("<u2" if codes.dtype == np.uint16 else "u1").tobytes()
    (out_dir / f"encode_{fmt}.bin").write_bytes(blob)
    return len(blob)


def main():
    np.seterr(over="ignore")  # the inputs deliberately include values that overflow float16/float32
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = pathlib.Path(__file__).resolve().parents[2]
    parser.add_argument("--out", type=pathlib.Path, default=root / "tests" / "fixtures" / "dtype")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240611)
    total = 0
    for fmt in FORMATS:
        total += write_decode(args.out, fmt)
        big = FORMATS[fmt][1] == np.uint16
        total += write_encode(args.out, fmt, rng, n_random=4000 if big else 3000, n_ties=2500 if big else 1000)
    print(f"wrote {total} bytes to {args.out} (torch {torch.__version__})")


if __name__ == "__main__":
    main()
