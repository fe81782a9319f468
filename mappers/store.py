"""Save and load a :class:`MappedNetwork`: one versioned, checksummed ``.npz`` file.

Schema (docs/mapped-format.md has the full table): a numpy ``.npz`` archive,
read with ``allow_pickle=False`` (nothing in it can execute code), holding

    header                      0-d unicode array: JSON (format, format_version,
                                variant, checkpoint, options, versions, groups:
                                units, window, arithmetic scalars, warnings)
    {group}/levels              (N*T,) float64 logit levels
    {group}/k_effective         (U,)   float64
    {group}/fixed_worst_error   (U,)   float64
    {group}/decode_values       (N*T+1,) float64 fire of each spike count (v2; only for
                                non-uniform level sets -- absent means n / (N T))
    {group}/host_constant       (U,) float64 the fire the host uses for a unit that gets no
                                neurons, NaN for the others (v3; only when a unit's fire
                                stays within the level bound of a constant)
    {group}/{float|fixed}/bias_mant, bias_exp             (U,)
    {group}/{float|fixed}/{source}/weight                 (U,)
    {group}/{float|fixed}/{source}/table                  (T, C) chip-generated payloads

``header.content_sha256`` is the SHA-256 of every array (name, dtype, shape,
bytes, in name order) and of the header itself without that field: a file
edited by hand, or cut short, is refused.  A file from a newer format version
is refused with the version it needs.  Writing is atomic (temp file + rename).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ember_neuro.atomic import atomic_write_bytes
from ember_neuro.errors import BadInput
from ember_neuro.mappers.network import (
    Addressing,
    Arithmetic,
    Connection,
    GateUnit,
    MappedNetwork,
    NeuronGroup,
)

FORMAT = "ember-neuro/mapped-network"
FORMAT_VERSION = 3  # 2: optional {group}/decode_values (non-uniform level sets); 3: optional
#                    {group}/host_constant (units the host computes as a constant); older files still load
FILENAME = "mapped.npz"

# Files written before groups stored their addressing: the four groups that release mapped.
LEGACY_ADDRESSING = {
    "attention": Addressing(hook="attention", unit_axis=1, idle_zero=True, label="attention probability p"),
    "hidden": Addressing(hook="hidden", unit_axis=-1, label="|h|"),
    "membrane": Addressing(hook="membrane", label="membrane V"),
    "membrane_hard": Addressing(hook="membrane", mode="hard", reads=(("input", "importance"),),
                                label="||attn_out||"),
}


class MappedFileError(BadInput):
    """A mapped-network file that cannot be used; the message is one line."""


def _arith_header(ar: Arithmetic) -> dict[str, Any]:
    return {"du": ar.du, "dv": ar.dv, "vth": ar.vth,
            "connections": [{"source": c.source, "weight_exp": int(c.weight_exp), "bits": int(c.bits),
                             "from_host": c.from_host} for c in ar.connections]}


def _group_header(g: NeuronGroup) -> dict[str, Any]:
    return {"name": g.name, "timesteps": g.timesteps, "neurons_per_gate": g.neurons_per_gate,
            "reset_windows": g.reset_windows, "level_set": g.level_set,
            "units": [{"layer": u.layer, "head": u.head, "theta": u.theta, "leak": u.leak, "k": u.k,
                       "tag": u.tag, "label": u.label} for u in g.units],
            "warnings": list(g.warnings), "saturated": list(g.saturated),
            "addressing": _addressing_header(g.address),
            "float": _arith_header(g.float_params), "fixed": _arith_header(g.fixed_params)}


def _addressing_header(a: Addressing) -> dict[str, Any]:
    return {"hook": a.hook, "mode": a.mode, "unit_axis": a.unit_axis, "idle_zero": a.idle_zero,
            "reads": [list(r) for r in a.reads], "label": a.label}


def _addressing(h: dict[str, Any]) -> Addressing | None:
    a = h.get("addressing")
    if a is None:
        return LEGACY_ADDRESSING.get(h["name"])
    axis = a.get("unit_axis")
    return Addressing(hook=str(a["hook"]), mode=str(a.get("mode", "rate")),
                      unit_axis=None if axis is None else int(axis),
                      idle_zero=bool(a.get("idle_zero", False)),
                      reads=tuple((str(s), str(i)) for s, i in a.get("reads", [])),
                      label=str(a.get("label", "")))


def _arrays(net: MappedNetwork) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for name, g in net.groups.items():
        out[f"{name}/levels"] = np.asarray(g.levels, np.float64)
        out[f"{name}/k_effective"] = np.asarray(g.k_effective, np.float64)
        out[f"{name}/fixed_worst_error"] = np.asarray(g.fixed_worst_error, np.float64)
        if g.decode_values is not None:
            out[f"{name}/decode_values"] = np.asarray(g.decode_values, np.float64)
        if g.host_constant is not None:
            out[f"{name}/host_constant"] = np.asarray(g.host_constant, np.float64)
        for kind, ar in (("float", g.float_params), ("fixed", g.fixed_params)):
            dtype = np.int64 if ar.fixed else np.float64
            out[f"{name}/{kind}/bias_mant"] = np.asarray(ar.bias_mant, dtype)
            out[f"{name}/{kind}/bias_exp"] = np.asarray(ar.bias_exp, dtype)
            for c in ar.connections:
                out[f"{name}/{kind}/{c.source}/weight"] = np.asarray(c.weight, dtype)
                if c.table is not None:
                    out[f"{name}/{kind}/{c.source}/table"] = np.asarray(c.table, dtype)
                if c.scale is not None:
                    out[f"{name}/{kind}/{c.source}/scale"] = np.asarray(c.scale, np.float64)
    return out


def written_version(net: MappedNetwork) -> int:
    """The oldest format that holds `net`: 3 with a host-constant unit, 2 with a non-uniform level
    set, else 1 -- so an older reader still reads every file it can read correctly."""
    if any(g.host_constant is not None for g in net.groups.values()):
        return 3
    return 2 if any(g.decode_values is not None for g in net.groups.values()) else 1


def content_digest(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 over the header (without its digest) and every array, in name order."""
    h = hashlib.sha256()
    meta = {k: v for k, v in header.items() if k != "content_sha256"}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(arrays):
        a = np.ascontiguousarray(arrays[key])
        h.update(f"{key}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_mapped(net: MappedNetwork, path: str | os.PathLike) -> Path:
    """Write `net` to `path` (a file, or a folder that receives mapped.npz), atomically."""
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    arrays = _arrays(net)
    # a file only a v2 reader decodes correctly says so; uniform-level files stay readable by v1
    version = written_version(net)
    header = {"format": FORMAT, "format_version": version, "variant": net.variant,
              "checkpoint": dict(net.checkpoint), "options": dict(net.options),
              "versions": dict(net.versions),
              "groups": [_group_header(g) for g in net.groups.values()]}
    header["content_sha256"] = content_digest(header, arrays)
    buf = io.BytesIO()
    np.savez(buf, header=np.array(json.dumps(header)), **arrays)
    atomic_write_bytes(path, lambda tmp: Path(tmp).write_bytes(buf.getvalue()))
    return path


def _refuse(path: Path, why: str) -> MappedFileError:
    return MappedFileError(f"{path}: {why}")


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as z:
            names = list(z.files)
            if "header" not in names:
                raise _refuse(path, f"not an ember-neuro mapped network (no header; {FORMAT} expected)")
            header_text = str(z["header"][()])
            arrays = {k: z[k] for k in names if k != "header"}
    except MappedFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise _refuse(path, f"not a readable mapped network: truncated, corrupt or foreign ({reason})") \
            from None
    try:
        header = json.loads(header_text)
    except json.JSONDecodeError:
        raise _refuse(path, "header is not JSON: not an ember-neuro mapped network") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        found = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise _refuse(path, f"format is {found!r}, not {FORMAT!r}")
    return header, arrays


def _arith(header: dict[str, Any], arrays: dict[str, np.ndarray], prefix: str, fixed: bool) -> Arithmetic:
    conns = []
    for c in header["connections"]:
        key = f"{prefix}/{c['source']}"
        conns.append(Connection(source=c["source"], weight=arrays[f"{key}/weight"],
                                weight_exp=int(c["weight_exp"]),
                                table=None if c["from_host"] else arrays[f"{key}/table"],
                                bits=int(c["bits"]), scale=arrays.get(f"{key}/scale")))
    return Arithmetic(fixed=fixed, connections=tuple(conns), bias_mant=arrays[f"{prefix}/bias_mant"],
                      bias_exp=arrays[f"{prefix}/bias_exp"], du=header["du"], dv=header["dv"],
                      vth=header["vth"])


def _group(h: dict[str, Any], arrays: dict[str, np.ndarray]) -> NeuronGroup:
    name = h["name"]
    units = tuple(GateUnit(int(u["layer"]), int(u["head"]), float(u["theta"]), float(u["leak"]),
                           float(u["k"]), str(u.get("tag", "H")), str(u.get("label", "")))
                  for u in h["units"])
    return NeuronGroup(
        name=name, units=units, timesteps=int(h["timesteps"]), neurons_per_gate=int(h["neurons_per_gate"]),
        levels=arrays[f"{name}/levels"], float_params=_arith(h["float"], arrays, f"{name}/float", False),
        fixed_params=_arith(h["fixed"], arrays, f"{name}/fixed", True),
        k_effective=arrays[f"{name}/k_effective"], fixed_worst_error=arrays[f"{name}/fixed_worst_error"],
        warnings=tuple(h["warnings"]), saturated=tuple(h["saturated"]),
        reset_windows=int(h.get("reset_windows", 1)), decode_values=arrays.get(f"{name}/decode_values"),
        level_set=str(h.get("level_set", "uniform")), addressing=_addressing(h),
        host_constant=arrays.get(f"{name}/host_constant"))


def load_mapped(path: str | os.PathLike, expect_sha256: str | None = None) -> MappedNetwork:
    """Read a mapped network (a file, or the folder ``map --out`` writes).

    Refuses, with one line each: a missing path, a truncated or foreign file, a
    tampered one (content checksum), a newer format version, and -- with
    ``expect_sha256`` -- a mapping made from another checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILENAME
    if not path.is_file():
        raise MappedFileError(f"mapped network not found: {path}")
    header, arrays = _read(path)
    version = header.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise _refuse(path, f"format_version {version!r} is not valid")
    if version > FORMAT_VERSION:
        raise _refuse(path, f"written by a newer ember-neuro (format v{version}); this release reads "
                            f"up to v{FORMAT_VERSION}: upgrade ember-neuro or map the checkpoint again")
    if header.get("content_sha256") != content_digest(header, arrays):
        raise _refuse(path, "content checksum mismatch: the file was modified after it was written")
    try:
        groups = {g["name"]: _group(g, arrays) for g in header["groups"]}
        net = MappedNetwork(variant=header["variant"], groups=groups, options=header["options"],
                            checkpoint=header["checkpoint"], versions=header.get("versions", {}))
    except (KeyError, TypeError, ValueError) as exc:
        raise _refuse(path, f"incomplete mapped network ({type(exc).__name__}: {exc})") from None
    made_from = str(net.checkpoint.get("sha256"))
    if expect_sha256 is not None and made_from != expect_sha256:
        raise _refuse(path, f"was mapped from another checkpoint (sha256 {made_from[:12]}…, this one is "
                            f"{expect_sha256[:12]}…); map this checkpoint again")
    return net
