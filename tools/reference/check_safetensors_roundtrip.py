#!/usr/bin/env python3
"""Developer check: files written by lowbit's SafetensorsWriter load in the Python `safetensors` library.

Usage:  /work/venv/bin/python tools/reference/check_safetensors_roundtrip.py [--tool BUILD/tests/io/safetensors_copy_tool]

1. Writes tensors of every dtype lowbit supports (odd sizes, a scalar, an empty tensor) with
   safetensors.torch.save_file.
2. Copies them with lowbit (tests/io/safetensors_copy_tool: Checkpoint -> SafetensorsWriter), once as a single
   file and once sharded, and copies the real lowbit-ref-100m checkpoint when /work/shared has it.
3. Loads lowbit's output with safetensors (safe_open and load_file), checks names, dtypes, shapes and bytes
   against the originals, the metadata, the index (total_size, weight_map) and the header layout rules of the
   Python library (8-byte padding with spaces, names sorted, offsets contiguous).
Not part of the build or the tests (Python is for developer tools only).
"""

import argparse
import json
import pathlib
import struct
import subprocess
import sys
import tempfile

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
REF_MODEL = ROOT.parent / "shared" / "models" / "lowbit-ref-100m"


def sample_tensors():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(3, 5, generator=g) * 10
    return {
        "a.f32": base.clone(),
        "b.f16": base.half(),
        "c.bf16": base.bfloat16(),
        "d.f8_e4m3": base.clamp(-448, 448).to(torch.float8_e4m3fn),
        "e.f8_e5m2": base.to(torch.float8_e5m2),
        "f.i8": base.to(torch.int8),
        "g.u8": base.abs().to(torch.uint8),
        "h.i16": (base * 100).to(torch.int16),
        "i.i32": (base * 1e6).to(torch.int32),
        "j.i64": (base * 1e12).to(torch.int64),
        "k.bool": base > 0,
        "l.f64": base.double() / 3,
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 7, dtype=torch.bfloat16),
        "z.big": torch.randn(40, 40, generator=g),
    }


def run_tool(tool, src, dst, max_shard=None):
    cmd = [str(tool), str(src), str(dst)] + ([str(max_shard)] if max_shard else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.split()
    return out


def check_header_layout(path):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header_bytes = raw[8:8 + n]
    assert (8 + n) % 8 == 0, f"{path}: header not padded to 8 bytes"
    text = header_bytes.decode("utf-8")
    assert text.rstrip(" ").endswith("}"), f"{path}: header must end with '}}' then space padding"
    header = json.loads(text)
    names = [k for k in header if k != "__metadata__"]
    assert names == sorted(names), f"{path}: names not sorted"
    ranges = sorted(tuple(header[k]["data_offsets"]) for k in names)
    at = 0
    for begin, end in ranges:
        assert begin == at, f"{path}: gap or overlap at {begin}"
        at = end
    assert at == len(raw) - 8 - n, f"{path}: data section size"
    sizes = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2}
    for k in names:
        begin = header[k]["data_offsets"][0]
        assert (8 + n + begin) % sizes.get(header[k]["dtype"], 1) == 0, f"{path}: {k} misaligned"
    return header


def compare_folder(out_dir, files, expected, metadata_expected):
    shards = [f for f in files if f.endswith(".safetensors")]
    loaded = {}
    for shard in shards:
        check_header_layout(out_dir / shard)
        with safe_open(str(out_dir / shard), framework="pt") as f:
            meta = f.metadata()
            for key, value in metadata_expected.items():
                assert meta.get(key) == value, f"{shard}: metadata {key}={meta.get(key)!r}"
            for name in f.keys():
                loaded[name] = f.get_tensor(name)
        load_file(str(out_dir / shard))  # the other entry point must accept it too
    if len(shards) > 1:
        index = json.loads((out_dir / "model.safetensors.index.json").read_text())
        assert set(index["weight_map"]) == set(loaded), "index weight_map does not list every tensor"
        total = sum(t.numel() * t.element_size() for t in loaded.values())
        assert index["metadata"]["total_size"] == total, "index total_size"
    assert set(loaded) == set(expected), f"names differ: {set(loaded) ^ set(expected)}"
    for name, want in expected.items():
        got = loaded[name]
        assert got.dtype == want.dtype and got.shape == want.shape, f"{name}: {got.dtype}{got.shape}"
        assert got.reshape(-1).view(torch.uint8).equal(want.reshape(-1).view(torch.uint8)), f"{name}: bytes"
    return len(shards), len(loaded)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tool", type=pathlib.Path, default=ROOT / "build" / "io" / "tests" / "io" / "safetensors_copy_tool")
    args = parser.parse_args()
    if not args.tool.exists():
        sys.exit(f"{args.tool} not found: build the safetensors_copy_tool target first")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        tensors = sample_tensors()
        (tmp / "src").mkdir()
        save_file(tensors, str(tmp / "src" / "model.safetensors"), metadata={"format": "pt", "origin": "python"})
        meta = {"format": "pt", "origin": "python", "written_by": "lowbit"}

        files = run_tool(args.tool, tmp / "src", tmp / "single")
        print("single file :", compare_folder(tmp / "single", files, tensors, meta), "(shards, tensors)")
        files = run_tool(args.tool, tmp / "src", tmp / "sharded", max_shard=200)
        print("sharded     :", compare_folder(tmp / "sharded", files, tensors, meta), "(shards, tensors)")

        if REF_MODEL.exists():
            ref = {}
            for shard in sorted(REF_MODEL.glob("*.safetensors")):
                ref.update(load_file(str(shard)))
            files = run_tool(args.tool, REF_MODEL, tmp / "ref", max_shard=50_000_000)
            print("ref-100m    :", compare_folder(tmp / "ref", files, ref, {"format": "pt"}), "(shards, tensors)")
    print("OK: lowbit's safetensors output loads bit-exactly in Python safetensors")


if __name__ == "__main__":
    main()
