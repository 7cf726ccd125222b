#!/usr/bin/env python3
"""Independent reference for lora's adapters: Python 3 + numpy, float64.

It shares no code with lora. It reads a llama-family GGUF base model with its
own GGUF reader and then computes the mean loss per trained token over a
JSONL file of examples ({"input_ids": [...], "labels": [...]}, label -100 is
not trained, the model predicts labels[t+1] at position t). There are three
modes:

  --peft DIR        the Hugging Face way. The base is converted to the HF
                    layout (q/k rows un-permuted, inverting
                    convert_hf_to_gguf.py's permute). The PEFT LoRA is merged
                    as W + scale * B @ A, with scale = lora_alpha / r, or
                    lora_alpha / sqrt(r) with use_rslora. The forward pass is
                    HF LLaMA: NeoX rotate_half RoPE, GQA by repeat_interleave,
                    RMSNorm, SwiGLU, and tied embeddings when output.weight is
                    absent.
  --gguf-lora FILE  the llama.cpp way. The GGUF-layout weights are kept,
                    normal RoPE rotates adjacent pairs, and each adapted
                    linear computes W x + scale * B (A x), with
                    scale = adapter.lora.alpha / r (1 when alpha is 0). The
                    file must meet llama-adapter.cpp's contract: general.type
                    adapter, adapter.type lora, general.architecture equal to
                    the base's, lora_a ggml dims [in, r] and lora_b [r, out].
  neither           the base model alone (the HF path).

It prints one JSON object: {"loss": ..., "tokens": ..., ...}.

  --jobs FILE       evaluates many adapters over one reading of the base:
                    FILE is JSONL of {"name": ..., "peft": DIR} or
                    {"name": ..., "gguf_lora": FILE} (neither: the base), and
                    each job prints one line, {"name", "loss", ...} or
                    {"name", "error"} when the adapter is refused.

  --greedy N        prints N greedy tokens after BOS and their text, through
                    the HF path and the llama.cpp path (or the one path of the
                    adapter given).
  --inspect FILE    dumps the metadata and tensor table of a GGUF or
                    safetensors file as JSON, read with this script's own
                    readers.

Any error goes to stderr and the exit status is 1.
"""

import argparse
import json
import math
import re
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- GGUF reader

GGUF_MAGIC = b"GGUF"
MAX_STRING = 1 << 20
MAX_ARRAY = 1 << 26
MAX_COUNT = 1 << 20
MAX_DIMS = 4

# GGUF metadata value types.
VT_NAMES = {0: "uint8", 1: "int8", 2: "uint16", 3: "int16", 4: "uint32", 5: "int32",
            6: "float32", 7: "bool", 8: "string", 9: "array", 10: "uint64", 11: "int64",
            12: "float64"}
VT_FMT = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
          10: "<Q", 11: "<q", 12: "<d"}

# ggml tensor types this reader decodes: name, values per block, bytes per block.
GGML_TYPES = {0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 8: ("Q8_0", 32, 34), 30: ("BF16", 1, 2)}


def tensor_bytes(name, typ, dims):
    """Byte size of a tensor of ggml type typ, checking the block rule."""
    _, block, size = GGML_TYPES[typ]
    n = 1
    for d in dims:
        n *= d
    if dims[0] % block:
        raise FormatError(f"tensor {name!r}: first dimension {dims[0]} is not a multiple of the {block}-value block")
    return n // block * size


def decode(typ, raw, n):
    """n float64 values from raw bytes of ggml type typ."""
    if typ == 0:
        return np.frombuffer(raw, dtype="<f4", count=n).astype(np.float64)
    if typ == 1:
        return np.frombuffer(raw, dtype="<f2", count=n).astype(np.float64)
    if typ == 30:  # bfloat16: the high half of a float32
        return (np.frombuffer(raw, dtype="<u2", count=n).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    if typ == 8:  # Q8_0: per 32 values an f16 scale d, then 32 int8 q; value = d * q
        blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("q", "i1", 32)]), count=n // 32)
        return (blocks["d"].astype(np.float64)[:, None] * blocks["q"].astype(np.float64)).reshape(n)
    if typ == 2:  # Q4_0: per 32 values an f16 scale d and 16 bytes; byte j holds
        # value j in its low nibble and value j+16 in its high one; value = d * (q - 8)
        blocks = np.frombuffer(raw, dtype=np.dtype([("d", "<f2"), ("q", "u1", 16)]), count=n // 32)
        q = np.concatenate([blocks["q"] & 0x0F, blocks["q"] >> 4], axis=1).astype(np.float64) - 8.0
        return (blocks["d"].astype(np.float64)[:, None] * q).reshape(n)
    raise FormatError(f"ggml type {typ} is not decoded by this reference")


class FormatError(Exception):
    pass


class Reader:
    def __init__(self, data, name):
        self.data = data
        self.pos = 0
        self.name = name

    def take(self, n):
        if n < 0 or self.pos + n > len(self.data):
            raise FormatError(f"{self.name}: unexpected end of file at byte {self.pos} (need {n} bytes)")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def unpack(self, fmt):
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self):
        n = self.unpack("<Q")
        if n > MAX_STRING:
            raise FormatError(f"{self.name}: string of {n} bytes at byte {self.pos} is too long")
        return self.take(n).decode("utf-8")

    def value(self, vt, depth=0):
        if vt in VT_FMT:
            return self.unpack(VT_FMT[vt])
        if vt == 8:
            return self.string()
        if vt == 9:
            if depth > 4:
                raise FormatError(f"{self.name}: arrays nested too deep")
            et = self.unpack("<I")
            n = self.unpack("<Q")
            if n > MAX_ARRAY or n > len(self.data) - self.pos:
                raise FormatError(f"{self.name}: array of {n} elements at byte {self.pos} is too long")
            if et not in VT_NAMES:
                raise FormatError(f"{self.name}: unknown array element type {et}")
            return {"elem": VT_NAMES[et], "values": [self.value(et, depth + 1) for _ in range(n)]}
        raise FormatError(f"{self.name}: unknown metadata value type {vt} at byte {self.pos}")


class GGUF:
    """A GGUF v2/v3 file: kv {key: (type name, value)}, tensors {name: info}."""

    def __init__(self, path):
        with open(path, "rb") as f:
            data = f.read()
        self.path = path
        r = Reader(data, path)
        if r.take(4) != GGUF_MAGIC:
            raise FormatError(f"{path}: not a GGUF file (magic is not 'GGUF')")
        self.version = r.unpack("<I")
        if self.version not in (2, 3):
            raise FormatError(f"{path}: GGUF version {self.version}, this reader reads 2 and 3")
        n_tensors = r.unpack("<Q")
        n_kv = r.unpack("<Q")
        if n_tensors > MAX_COUNT or n_kv > MAX_COUNT:
            raise FormatError(f"{path}: implausible counts ({n_tensors} tensors, {n_kv} keys)")
        self.kv = {}
        for _ in range(n_kv):
            key = r.string()
            vt = r.unpack("<I")
            if key in self.kv:
                raise FormatError(f"{path}: duplicate key {key!r}")
            self.kv[key] = (VT_NAMES.get(vt, str(vt)), r.value(vt))
        self.alignment = 32
        if "general.alignment" in self.kv:
            t, a = self.kv["general.alignment"]
            if t != "uint32" or a <= 0 or a & (a - 1):
                raise FormatError(f"{path}: general.alignment must be a uint32 power of two, got {t} {a}")
            self.alignment = a
        self.tensors = {}
        order = []
        for _ in range(n_tensors):
            name = r.string()
            nd = r.unpack("<I")
            if nd == 0 or nd > MAX_DIMS:
                raise FormatError(f"{path}: tensor {name!r} has {nd} dimensions")
            dims = [r.unpack("<Q") for _ in range(nd)]
            typ = r.unpack("<I")
            off = r.unpack("<Q")
            if name in self.tensors:
                raise FormatError(f"{path}: duplicate tensor {name!r}")
            self.tensors[name] = {"name": name, "dims": dims, "type": typ, "offset": off}
            order.append(name)
        self.order = order
        self.data_offset = -(-r.pos // self.alignment) * self.alignment
        self.data = data
        for name in order:
            t = self.tensors[name]
            if t["offset"] % self.alignment:
                raise FormatError(f"{path}: tensor {name!r} offset {t['offset']} is not a multiple of the alignment {self.alignment}")
            if t["type"] in GGML_TYPES:
                try:
                    size = tensor_bytes(name, t["type"], t["dims"])
                except FormatError as e:
                    raise FormatError(f"{path}: {e}")
                end = self.data_offset + t["offset"] + size
                if end > len(data):
                    raise FormatError(f"{path}: tensor {name!r} runs past the end of the file")

    def get(self, key, default=None, want=None):
        if key not in self.kv:
            return default
        t, v = self.kv[key]
        if want is not None and t not in want:
            raise FormatError(f"{self.path}: {key} has type {t}, want one of {sorted(want)}")
        return v

    def tensor(self, name):
        """Returns the tensor as a float64 array of numpy shape reversed(ggml dims)."""
        t = self.tensors.get(name)
        if t is None:
            raise FormatError(f"{self.path}: no tensor {name!r}")
        if t["type"] not in GGML_TYPES:
            raise FormatError(f"{self.path}: tensor {name!r} has ggml type {t['type']}; this reference reads F32, F16, BF16, Q8_0 and Q4_0")
        n = 1
        for d in t["dims"]:
            n *= d
        start = self.data_offset + t["offset"]
        raw = self.data[start:start + tensor_bytes(name, t["type"], t["dims"])]
        return decode(t["type"], raw, n).reshape(list(reversed(t["dims"])))

    def describe(self):
        kv = {}
        for k, (t, v) in self.kv.items():
            if isinstance(v, dict):  # arrays: type and length, and short ones in full
                n = len(v["values"])
                v = {"elem": v["elem"], "len": n, "values": v["values"] if n <= 64 else None}
            kv[k] = {"type": t, "value": v}
        tensors = [{"name": n, "dims": self.tensors[n]["dims"],
                    "type": GGML_TYPES.get(self.tensors[n]["type"], (str(self.tensors[n]["type"]),))[0],
                    "offset": self.tensors[n]["offset"]} for n in self.order]
        return {"format": "gguf", "version": self.version, "alignment": self.alignment,
                "data_offset": self.data_offset, "kv": kv, "tensors": tensors}


# --------------------------------------------------------- safetensors reader

ST_DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8"}


def read_safetensors(path):
    """Returns (metadata, {name: float64 array}) of a safetensors file."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 8:
        raise FormatError(f"{path}: too short for a safetensors file")
    hlen = struct.unpack("<Q", data[:8])[0]
    if hlen > min(len(data) - 8, 100 << 20):
        raise FormatError(f"{path}: header length {hlen} does not fit the file")
    header = json.loads(data[8:8 + hlen].decode("utf-8"))
    if not isinstance(header, dict):
        raise FormatError(f"{path}: header is not a JSON object")
    base = 8 + hlen
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, info in header.items():
        dtype, shape, (begin, end) = info["dtype"], info["shape"], info["data_offsets"]
        n = 1
        for d in shape:
            if d < 0:
                raise FormatError(f"{path}: tensor {name!r} has a negative dimension")
            n *= d
        if dtype == "BF16":
            size = 2
        elif dtype in ST_DTYPES:
            size = np.dtype(ST_DTYPES[dtype]).itemsize
        else:
            raise FormatError(f"{path}: tensor {name!r} has dtype {dtype}; this reference reads F32, F16, BF16 and F64")
        if not (0 <= begin <= end and base + end <= len(data)) or end - begin != n * size:
            raise FormatError(f"{path}: tensor {name!r} data_offsets [{begin}, {end}] do not match its shape {shape} and dtype {dtype}")
        raw = data[base + begin:base + end]
        if dtype == "BF16":
            arr = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            arr = np.frombuffer(raw, dtype=ST_DTYPES[dtype])
        out[name] = arr.astype(np.float64).reshape(shape)
    return meta, out


# -------------------------------------------------------------- base model

GGUF_STEMS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
              "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
              "ffn_down": "mlp.down_proj"}
HF_TO_STEM = {v: k for k, v in GGUF_STEMS.items()}


class Base:
    """A llama-family base model read from GGUF, in the GGUF layout."""

    def __init__(self, path):
        g = GGUF(path)
        self.gguf = g
        if g.get("general.type") == "adapter":
            raise FormatError(f"{path}: is a LoRA adapter (general.type adapter), not a base model: pass it as --gguf-lora")
        arch = g.get("general.architecture")
        if arch not in ("llama", "mistral"):
            raise FormatError(f"{path}: architecture {arch!r}; this reference runs llama and mistral GGUF files (Q/K rows permuted by convert_hf_to_gguf.py)")
        self.arch = arch

        def need(key):
            v = g.get(f"{arch}.{key}")
            if v is None:
                raise FormatError(f"{path}: missing {arch}.{key}")
            return v

        self.dim = int(need("embedding_length"))
        self.layers = int(need("block_count"))
        self.heads = int(need("attention.head_count"))
        self.kv_heads = int(g.get(f"{arch}.attention.head_count_kv", self.heads))
        self.ffn = int(need("feed_forward_length"))
        self.eps = float(need("attention.layer_norm_rms_epsilon"))
        self.theta = float(g.get(f"{arch}.rope.freq_base", 10000.0))
        self.head_dim = int(g.get(f"{arch}.attention.key_length", self.dim // self.heads))
        rope_dims = int(g.get(f"{arch}.rope.dimension_count", self.head_dim))
        if rope_dims != self.head_dim:
            raise FormatError(f"{path}: rope.dimension_count {rope_dims} != head dim {self.head_dim}: partial rotary is not a LLaMA feature")
        if self.heads % self.kv_heads:
            raise FormatError(f"{path}: {self.heads} heads are not a multiple of {self.kv_heads} KV heads")
        self.embed = g.tensor("token_embd.weight")
        self.output_norm = g.tensor("output_norm.weight")
        self.output = g.tensor("output.weight") if "output.weight" in g.tensors else self.embed
        self.w = {}  # (layer, stem) -> [out, in] in the GGUF layout
        self.norms = []
        for i in range(self.layers):
            for stem in GGUF_STEMS:
                self.w[(i, stem)] = g.tensor(f"blk.{i}.{stem}.weight")
            self.norms.append((g.tensor(f"blk.{i}.attn_norm.weight"), g.tensor(f"blk.{i}.ffn_norm.weight")))

    def heads_of(self, stem):
        return self.heads if stem == "attn_q" else self.kv_heads


def unpermute(w, n_head):
    """Inverts convert_hf_to_gguf.py's
    permute(w) = w.reshape(n_head, 2, rows // n_head // 2, *rest).swapaxes(1, 2).reshape(w.shape):
    GGUF row h*hd + 2i + j goes back to HF row h*hd + j*hd/2 + i."""
    rows = w.shape[0]
    return w.reshape(n_head, rows // n_head // 2, 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


# ----------------------------------------------------------------- forward

def rmsnorm(x, w, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * w


def rope_neox(x, theta):
    """HF rotate_half RoPE on x [T, H, D]: dim i pairs with i + D/2."""
    t, _, d = x.shape
    inv = 1.0 / theta ** (np.arange(0, d, 2, dtype=np.float64) / d)
    ang = np.arange(t, dtype=np.float64)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang), np.cos(ang)], axis=-1)[:, None, :]
    sin = np.concatenate([np.sin(ang), np.sin(ang)], axis=-1)[:, None, :]
    rot = np.concatenate([-x[..., d // 2:], x[..., :d // 2]], axis=-1)
    return x * cos + rot * sin


def rope_normal(x, theta):
    """llama.cpp's normal RoPE (mode 0) on x [T, H, D]: dims 2i and 2i+1 pair."""
    t, _, d = x.shape
    out = np.empty_like(x)
    for i0 in range(0, d, 2):
        ang = np.arange(t, dtype=np.float64) * theta ** (-i0 / d)
        c, s = np.cos(ang)[:, None], np.sin(ang)[:, None]
        x0, x1 = x[..., i0], x[..., i0 + 1]
        out[..., i0] = x0 * c - x1 * s
        out[..., i0 + 1] = x0 * s + x1 * c
    return out


def forward(base, ids, linear, rope):
    """Logits [T, vocab] for one sequence. linear(layer, stem, x) applies the
    adapted projection; rope rotates [T, H, D]."""
    x = base.embed[ids]
    t = len(ids)
    hd = base.head_dim
    rep = base.heads // base.kv_heads
    mask = np.triu(np.full((t, t), -np.inf), k=1)
    for i in range(base.layers):
        attn_norm, ffn_norm = base.norms[i]
        h = rmsnorm(x, attn_norm, base.eps)
        q = rope(linear(i, "attn_q", h).reshape(t, base.heads, hd), base.theta)
        k = rope(linear(i, "attn_k", h).reshape(t, base.kv_heads, hd), base.theta)
        v = linear(i, "attn_v", h).reshape(t, base.kv_heads, hd)
        k = np.repeat(k, rep, axis=1)  # repeat_interleave: query head j reads KV head j // rep
        v = np.repeat(v, rep, axis=1)
        s = np.einsum("thd,shd->hts", q, k) / math.sqrt(hd) + mask
        s = np.exp(s - s.max(axis=-1, keepdims=True))
        s /= s.sum(axis=-1, keepdims=True)
        o = np.einsum("hts,shd->thd", s, v).reshape(t, base.heads * hd)
        x = x + linear(i, "attn_output", o)
        h = rmsnorm(x, ffn_norm, base.eps)
        g = linear(i, "ffn_gate", h)
        x = x + linear(i, "ffn_down", g / (1.0 + np.exp(-g)) * linear(i, "ffn_up", h))
    return rmsnorm(x, base.output_norm, base.eps) @ base.output.T


def nll(logits, ids, labels):
    """Summed negative log-likelihood and count over trained positions."""
    total, n = 0.0, 0
    for pos in range(len(ids) - 1):
        y = labels[pos + 1]
        if y == -100:
            continue
        row = logits[pos]
        m = row.max()
        total += m + math.log(np.exp(row - m).sum()) - row[y]
        n += 1
    return total, n


# ------------------------------------------------------------ PEFT (HF way)

PEFT_KEY = re.compile(r"^base_model\.model\.model\.layers\.(\d+)\.((?:self_attn|mlp)\.[a-z_]+)\.lora_([AB])(?:\.default)?\.weight$")


def pattern_value(patterns, module, default):
    """PEFT's rank_pattern / alpha_pattern lookup: a key matches a module whose
    name is the key or ends with '.' + key (regular expressions allowed)."""
    for key, val in (patterns or {}).items():
        if re.fullmatch(r"(.*\.)?" + key, module):
            return val
    return default


def hf_linears(base, peft_dir):
    """Weights in the HF layout with the PEFT LoRA merged as W + scale B A."""
    w = {}
    for (i, stem), m in base.w.items():
        if stem in ("attn_q", "attn_k"):
            m = unpermute(m, base.heads_of(stem))
        w[(i, stem)] = m.copy()
    adapted = 0
    scales = set()
    if peft_dir is not None:
        with open(f"{peft_dir}/adapter_config.json") as f:
            cfg = json.load(f)
        if str(cfg.get("peft_type", "LORA")).upper() != "LORA":
            raise FormatError(f"{peft_dir}/adapter_config.json: peft_type {cfg.get('peft_type')!r} is not LORA")
        if cfg.get("fan_in_fan_out"):
            raise FormatError(f"{peft_dir}/adapter_config.json: fan_in_fan_out is true (GPT-2 Conv1D layout): not a LLaMA adapter")
        if cfg.get("use_dora"):
            raise FormatError(f"{peft_dir}/adapter_config.json: DoRA is not plain LoRA")
        _, tensors = read_safetensors(f"{peft_dir}/adapter_model.safetensors")
        pairs = {}
        for name, arr in tensors.items():
            m = PEFT_KEY.match(name)
            if not m or m.group(2) not in HF_TO_STEM:
                raise FormatError(f"{peft_dir}: unexpected tensor {name!r} (want base_model.model.model.layers.N.<self_attn|mlp>.<proj>.lora_A/B.weight)")
            pairs.setdefault((int(m.group(1)), m.group(2)), {})[m.group(3)] = arr
        for (layer, path), ab in sorted(pairs.items()):
            if set(ab) != {"A", "B"}:
                raise FormatError(f"{peft_dir}: layer {layer} {path} lacks lora_A or lora_B")
            a, b = ab["A"], ab["B"]
            key = (layer, HF_TO_STEM[path])
            if key not in w:
                raise FormatError(f"{peft_dir}: layer {layer} does not exist in the base")
            out, inp = w[key].shape
            module = f"model.layers.{layer}.{path}"
            r = int(pattern_value(cfg.get("rank_pattern"), module, cfg["r"]))
            alpha = float(pattern_value(cfg.get("alpha_pattern"), module, cfg["lora_alpha"]))
            if a.shape != (r, inp) or b.shape != (out, r):
                raise FormatError(f"{peft_dir}: {module} lora_A {a.shape} / lora_B {b.shape}, want ({r}, {inp}) / ({out}, {r})")
            scale = alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r
            w[key] = w[key] + scale * (b @ a)
            adapted += 1
            scales.add(scale)
    return w, adapted, sorted(scales)


# --------------------------------------------------- GGUF LoRA (llama.cpp way)

def gguf_lora(base, path):
    """{(layer, stem): (A [r, in], B [out, r], scale)} from a GGUF LoRA,
    checked as llama-adapter.cpp checks it."""
    g = GGUF(path)
    # llama.cpp reads these with gguf_get_val_str / gguf_get_val_f32, which
    # assert the stored type.
    if g.get("general.type", want={"string"}) != "adapter":
        raise FormatError(f"{path}: general.type is {g.get('general.type')!r}, llama.cpp wants 'adapter'")
    if g.get("adapter.type", want={"string"}) != "lora":
        raise FormatError(f"{path}: adapter.type is {g.get('adapter.type')!r}, llama.cpp wants 'lora'")
    if g.get("general.architecture", want={"string"}) != base.arch:
        raise FormatError(f"{path}: general.architecture {g.get('general.architecture')!r} != base {base.arch!r} (llama.cpp: model arch and LoRA arch mismatch)")
    alpha = float(g.get("adapter.lora.alpha", 0.0, want={"float32"}))
    pairs = {}
    for name in g.order:
        if name.endswith(".lora_a"):
            pairs.setdefault(name[:-7], {})["a"] = name
        elif name.endswith(".lora_b"):
            pairs.setdefault(name[:-7], {})["b"] = name
        elif name.endswith("_norm.weight"):
            continue  # llama.cpp skips these too
        else:
            raise FormatError(f"{path}: LoRA tensor {name!r} has unexpected suffix")
    out = {}
    for base_name, ab in pairs.items():
        if set(ab) != {"a", "b"}:
            raise FormatError(f"{path}: LoRA tensor pair for {base_name!r} is missing one component")
        bt = base.gguf.tensors.get(base_name)
        if bt is None:
            raise FormatError(f"{path}: LoRA tensor {base_name!r} does not exist in base model")
        ta, tb = g.tensors[ab["a"]], g.tensors[ab["b"]]
        if len(ta["dims"]) != 2 or len(tb["dims"]) != 2:
            raise FormatError(f"{path}: {base_name} lora tensors are not matrices")
        if bt["dims"][0] != ta["dims"][0] or bt["dims"][1] != tb["dims"][1]:
            raise FormatError(f"{path}: tensor {base_name!r} has incorrect shape (base ne {bt['dims']}, lora_a ne {ta['dims']}, lora_b ne {tb['dims']})")
        if ta["dims"][1] != tb["dims"][0]:
            raise FormatError(f"{path}: {base_name}: lora_a tensor is not transposed (lora_a ne {ta['dims']}, lora_b ne {tb['dims']})")
        m = re.fullmatch(r"blk\.(\d+)\.([a-z_]+)\.weight", base_name)
        if not m or m.group(2) not in GGUF_STEMS:
            raise FormatError(f"{path}: {base_name!r} is not a block linear this reference adapts")
        rank = tb["dims"][0]
        scale = alpha / rank if alpha else 1.0
        out[(int(m.group(1)), m.group(2))] = (g.tensor(ab["a"]), g.tensor(ab["b"]), scale)
    return out


# -------------------------------------------------------------------- main

def read_examples(path):
    exs = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            rec = json.loads(line)
            ids, labels = rec["input_ids"], rec["labels"]
            if len(ids) != len(labels):
                raise FormatError(f"{path}:{n}: {len(ids)} input_ids but {len(labels)} labels")
            exs.append((np.asarray(ids, dtype=np.int64), list(labels)))
    if not exs:
        raise FormatError(f"{path}: no examples")
    return exs


# Errors that mean "this input is malformed", reported without a traceback.
INPUT_ERRORS = (FormatError, OSError, ValueError, KeyError, TypeError, IndexError, struct.error)


def adapted_model(base, peft=None, lora_path=None):
    """(linear, rope, mode, adapted, scales) for the base with one adapter
    (or none): the llama.cpp path for a GGUF LoRA, else the HF path."""
    if peft and lora_path:
        raise FormatError("--peft and --gguf-lora are exclusive: one adapter per run")
    if lora_path:
        lora = gguf_lora(base, lora_path)

        def linear(i, stem, x):
            y = x @ base.w[(i, stem)].T
            if (i, stem) in lora:
                a, b, s = lora[(i, stem)]
                y = y + s * ((x @ a.T) @ b.T)
            return y
        return linear, rope_normal, "gguf", len(lora), sorted({s for _, _, s in lora.values()})
    w, adapted, scales = hf_linears(base, peft)

    def linear(i, stem, x):
        return x @ w[(i, stem)].T
    return linear, rope_neox, "peft" if peft else "none", adapted, scales


def evaluate(base, exs, peft=None, lora_path=None):
    """The mean loss per trained token of base with one adapter (or none)."""
    linear, rope, mode, adapted, scales = adapted_model(base, peft, lora_path)
    total, count = 0.0, 0
    for ids, labels in exs:
        s, n = nll(forward(base, ids, linear, rope), ids, labels)
        total += s
        count += n
    if count == 0:
        raise FormatError("no trained label in any example")
    return {"loss": total / count, "tokens": count, "mode": mode, "adapted": adapted, "scales": scales}


def greedy(base, linear, rope, n):
    """n tokens after BOS by argmax (lowest id on ties), and their text as
    llama2.c prints it (SentencePiece pieces, the first one's space dropped)."""
    bos = int(base.gguf.get("tokenizer.ggml.bos_token_id", 1))
    ids = [bos]
    for _ in range(n):
        ids.append(int(np.argmax(forward(base, np.array(ids), linear, rope)[-1])))
    pieces = base.gguf.get("tokenizer.ggml.tokens", {"values": []})["values"]
    out = bytearray()
    for k, t in enumerate(ids[1:]):
        piece = pieces[t] if t < len(pieces) else ""
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
        b = bytes([int(m.group(1), 16)]) if m else piece.replace("\u2581", " ").encode("utf-8")
        if k == 0 and b.startswith(b" "):
            b = b[1:]
        out += b
    return {"ids": ids[1:], "text": out.decode("utf-8", errors="replace")}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="base model (llama GGUF; F32, F16, BF16, Q8_0 or Q4_0 tensors)")
    p.add_argument("--examples", help="JSONL of {input_ids, labels}")
    p.add_argument("--peft", help="PEFT adapter directory (HF way)")
    p.add_argument("--gguf-lora", help="GGUF LoRA adapter (llama.cpp way)")
    p.add_argument("--jobs", help="JSONL of {\"name\", \"peft\" or \"gguf_lora\"}: one result line each, "
                                  "{\"name\", \"error\"} for a refused adapter (the base is read once)")
    p.add_argument("--greedy", type=int, metavar="N",
                   help="print N greedy tokens after BOS instead of a loss (both paths when no adapter is given)")
    p.add_argument("--inspect", help="dump a GGUF or safetensors file's header as JSON")
    args = p.parse_args()

    if args.inspect:
        with open(args.inspect, "rb") as f:
            magic = f.read(4)
        if magic == GGUF_MAGIC:
            print(json.dumps(GGUF(args.inspect).describe()))
        else:
            meta, ts = read_safetensors(args.inspect)
            print(json.dumps({"format": "safetensors", "metadata": meta,
                              "tensors": [{"name": n, "shape": list(a.shape), "sum": float(a.sum()),
                                           "sumsq": float((a * a).sum())} for n, a in sorted(ts.items())]}))
        return
    if args.greedy is not None:
        if not args.model or not 0 < args.greedy <= 1024:
            p.error("--greedy N needs --model and 0 < N <= 1024")
        base = Base(args.model)
        if args.peft or args.gguf_lora:
            linear, rope, mode, _, _ = adapted_model(base, args.peft, args.gguf_lora)
            print(json.dumps({mode: greedy(base, linear, rope, args.greedy)}))
        else:
            w, _, _ = hf_linears(base, None)
            print(json.dumps({
                "hf": greedy(base, lambda i, stem, x: x @ w[(i, stem)].T, rope_neox, args.greedy),
                "gguf": greedy(base, lambda i, stem, x: x @ base.w[(i, stem)].T, rope_normal, args.greedy)}))
        return
    if not args.model or not args.examples:
        p.error("--model and --examples are required (or --inspect FILE, or --greedy N)")

    base = Base(args.model)
    exs = read_examples(args.examples)
    for n, (ids, _) in enumerate(exs, 1):
        if ids.min() < 0 or ids.max() >= base.embed.shape[0]:
            raise FormatError(f"{args.examples}: example {n} has a token id outside the vocabulary")

    if not args.jobs:
        print(json.dumps(evaluate(base, exs, args.peft, args.gguf_lora)))
        return
    if args.peft or args.gguf_lora:
        p.error("--jobs takes the adapters from its file")
    with open(args.jobs) as f:
        jobs = [json.loads(line) for line in f if line.strip()]
    for job in jobs:
        try:
            out = evaluate(base, exs, job.get("peft"), job.get("gguf_lora"))
        except INPUT_ERRORS as e:
            out = {"error": f"peft_reference: {e}"}
        out["name"] = job.get("name", "")
        print(json.dumps(out), flush=True)


if __name__ == "__main__":
    try:
        main()
    except INPUT_ERRORS as e:
        print(f"peft_reference: {e}", file=sys.stderr)
        sys.exit(1)
