"""The genome: a frozen, JSON-round-trippable description of a generator/discriminator pair.

Everything else (networks, parameter counts, checkpoints, ledger rows, plots) is derived from it.
The layer plan below is the one place that turns a genome into concrete layers; the networks and
the parameter counts both read it, so they cannot disagree.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .._util.files import JSONFileError, parse_json, read_json_file
from ..errors import GenomeError

GENOME_FORMAT = 1
# Bounds of a genome's numbers: widths fit a C int (torch's conv layers), sizes stay far from any overflow.
MAX_WIDTH = 2**31 - 1
MAX_RESOLUTION = 2**16
MAX_KERNEL = 255
IMAGE_CHANNELS = (1, 3)  # greyscale or colour, what the datasets serve


def is_int(x: object) -> bool:
    """An int that is not a bool (JSON's true would otherwise pass as 1)."""
    return isinstance(x, int) and not isinstance(x, bool)


def is_power_of_two(n: int) -> bool:
    return is_int(n) and n > 0 and (n & (n - 1)) == 0


def proggan_channels(max_resolution: int, fmap_base: int = 8192, fmap_max: int = 512) -> dict[int, int]:
    """ProgGAN's channel schedule: min(fmap_base / 2**(log2(res) - 1), fmap_max) for res = 4..max."""
    if not is_power_of_two(max_resolution) or max_resolution < 4:
        raise GenomeError(f"max_resolution must be a power of two >= 4, got {max_resolution}")
    out = {}
    res = 4
    while res <= max_resolution:
        stage = int(math.log2(res)) - 1
        out[res] = min(int(fmap_base / 2**stage), fmap_max)
        res *= 2
    return out


def constant_channels(max_resolution: int, channels: int) -> dict[int, int]:
    """The same width at every scale (ProgGAN's CIFAR-10 setting uses 512)."""
    return {res: channels for res in proggan_channels(max_resolution)}


@dataclass(frozen=True)
class ConvLayer:
    """A conv layer grown into G or D: kernel size, filters, and the resolution it was grown at."""

    kernel: int
    filters: int
    resolution: int

    def to_dict(self) -> dict[str, int]:
        return {"kernel": self.kernel, "filters": self.filters, "resolution": self.resolution}


@dataclass(frozen=True)
class Genome:
    """Architecture of a (G, D) pair.

    ``channels`` maps every scale 4, 8, ..., up to at least ``resolution`` to the width of its
    ProgGAN block. ``g_layers``/``d_layers`` are the grown convs in the order they were grown; the
    position in that tuple is the layer's permanent name (``grow{i}``), so inheritance by name works.
    """

    latent_size: int = 128
    base_resolution: int = 8
    resolution: int = 8
    channels: tuple[tuple[int, int], ...] = field(default_factory=lambda: tuple(constant_channels(32, 512).items()))
    g_layers: tuple[ConvLayer, ...] = ()
    d_layers: tuple[ConvLayer, ...] = ()
    image_channels: int = 3

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def base(
        cls,
        latent_size: int = 128,
        base_resolution: int = 8,
        channels: dict[int, int] | None = None,
        max_resolution: int = 32,
        image_channels: int = 3,
    ) -> Genome:
        """ProgGAN's network at ``base_resolution`` (the 4x4 block plus one block per scale up to d0)."""
        chans = channels if channels is not None else constant_channels(max_resolution, 512)
        return cls(
            latent_size=latent_size,
            base_resolution=base_resolution,
            resolution=base_resolution,
            channels=tuple(sorted((int(k), int(v)) for k, v in chans.items())),
            image_channels=image_channels,
        )

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        def need(cond: bool, what: str) -> None:
            if not cond:
                raise GenomeError(f"invalid genome: {what}")

        need(is_int(self.latent_size) and 0 < self.latent_size <= MAX_WIDTH,
             f"latent_size must be an int in [1, {MAX_WIDTH}], got {self.latent_size!r}")
        need(is_power_of_two(self.base_resolution) and 4 <= self.base_resolution <= MAX_RESOLUTION,
             f"base_resolution must be a power of two in [4, {MAX_RESOLUTION}], got {self.base_resolution!r}")
        need(is_power_of_two(self.resolution) and self.base_resolution <= self.resolution <= MAX_RESOLUTION,
             f"resolution must be a power of two in [base_resolution ({self.base_resolution}), {MAX_RESOLUTION}],"
             f" got {self.resolution!r}")
        need(is_int(self.image_channels) and self.image_channels in IMAGE_CHANNELS,
             f"image_channels must be 1 (greyscale) or 3 (colour), got {self.image_channels!r}")
        need(isinstance(self.channels, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in self.channels),
             "channels must be (resolution, width) pairs")
        chans = dict(self.channels)
        need(len(chans) == len(self.channels), "channels lists a resolution twice")
        for res, ch in chans.items():
            need(is_power_of_two(res) and 4 <= res <= MAX_RESOLUTION,
                 f"channels key {res!r} is not a power of two in [4, {MAX_RESOLUTION}]")
            need(is_int(ch) and 0 < ch <= MAX_WIDTH, f"channels[{res}] must be an int in [1, {MAX_WIDTH}], got {ch!r}")
        res = 4
        while res <= self.resolution:
            need(res in chans, f"channels has no width for resolution {res}; give every scale 4..{self.resolution}")
            res *= 2
        for name, layers in (("g_layers", self.g_layers), ("d_layers", self.d_layers)):
            last = self.base_resolution
            for i, layer in enumerate(layers):
                need(isinstance(layer, ConvLayer), f"{name}[{i}] is not a ConvLayer")
                need(is_int(layer.kernel) and 1 <= layer.kernel <= MAX_KERNEL and layer.kernel % 2 == 1,
                     f"{name}[{i}].kernel must be an odd int in [1, {MAX_KERNEL}] (same padding), got {layer.kernel!r}")
                need(is_int(layer.filters) and 0 < layer.filters <= MAX_WIDTH,
                     f"{name}[{i}].filters must be an int in [1, {MAX_WIDTH}], got {layer.filters!r}")
                need(is_power_of_two(layer.resolution) and self.base_resolution <= layer.resolution <= self.resolution,
                     f"{name}[{i}].resolution must be a power of two in [{self.base_resolution}, {self.resolution}],"
                     f" got {layer.resolution!r}")
                need(layer.resolution >= last,
                     f"{name}[{i}] was grown at {layer.resolution}px after a layer at {last}px;"
                     " layers can only be grown at the current resolution, so resolutions must not decrease")
                last = layer.resolution

    # ------------------------------------------------------------------ derived views
    @property
    def channel_map(self) -> dict[int, int]:
        return dict(self.channels)

    def scales(self) -> list[int]:
        """Block resolutions from 4 up to the current resolution."""
        out, res = [], 4
        while res <= self.resolution:
            out.append(res)
            res *= 2
        return out

    def g_params(self) -> int:
        return sum(spec.num_params for spec in g_plan(self))

    def d_params(self) -> int:
        return sum(spec.num_params for spec in d_plan(self))

    def key(self) -> str:
        """Stable content hash (12 hex digits) of the canonical JSON."""
        return hashlib.sha256(self.to_json(indent=None).encode()).hexdigest()[:12]

    def summary(self) -> str:
        def fmt(layers: tuple[ConvLayer, ...]) -> str:
            parts = []
            for res in self.scales():
                grown = [f"k{layer.kernel}f{layer.filters}" for layer in layers if layer.resolution == res]
                parts.append(f"{res}" + (f"[{' '.join(grown)}]" if grown else ""))
            return " ".join(parts)

        return (f"{self.resolution}px z{self.latent_size} | G {fmt(self.g_layers)} | D {fmt(self.d_layers)}"
                f" | params G {self.g_params() / 1e6:.2f}M D {self.d_params() / 1e6:.2f}M")

    # ------------------------------------------------------------------ JSON
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": GENOME_FORMAT,
            "latent_size": self.latent_size,
            "base_resolution": self.base_resolution,
            "resolution": self.resolution,
            "image_channels": self.image_channels,
            "channels": {str(k): v for k, v in self.channels},
            "g_layers": [layer.to_dict() for layer in self.g_layers],
            "d_layers": [layer.to_dict() for layer in self.d_layers],
        }

    def to_json(self, indent: int | None = 2) -> str:
        separators = (",", ":") if indent is None else None
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True, separators=separators)

    @classmethod
    def from_dict(cls, data: Any, source: str = "genome") -> Genome:
        if not isinstance(data, dict):
            raise GenomeError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {"format", "latent_size", "base_resolution", "resolution", "image_channels", "channels",
                 "g_layers", "d_layers"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise GenomeError(f"{source}: unknown field(s) {unknown}; known fields are {sorted(known)}")
        if data.get("format", GENOME_FORMAT) != GENOME_FORMAT:
            raise GenomeError(f"{source}: genome format {data.get('format')!r} is not supported"
                              f" (expected {GENOME_FORMAT})")
        for required in ("latent_size", "base_resolution", "resolution", "channels"):
            if required not in data:
                raise GenomeError(f"{source}: missing field {required!r}")
        for name in ("latent_size", "base_resolution", "resolution", "image_channels"):
            if name in data and not is_int(data[name]):
                raise GenomeError(f"{source}: field {name!r} must be an integer, got {json.dumps(data[name])}")
        raw = data["channels"]
        if not isinstance(raw, dict):
            raise GenomeError(f"{source}: field 'channels' must be an object mapping resolutions to widths,"
                              f' e.g. {{"4": 512, "8": 512}}')
        pairs = []
        for k, v in raw.items():
            # Keys are JSON's strings of digits; widths must be ints as written (32.5 or true is no width).
            res = int(k) if isinstance(k, str) and k.strip().isdigit() else k
            if not is_int(res) or not is_int(v):
                raise GenomeError(f"{source}: channels[{k!r}] = {v!r}: channels must map resolutions (\"8\")"
                                  " to integer widths (512)")
            pairs.append((res, v))
        channels = tuple(sorted(pairs))

        def layers(name: str) -> tuple[ConvLayer, ...]:
            raw = data.get(name, [])
            if not isinstance(raw, list):
                raise GenomeError(f"{source}: field {name!r} must be a list")
            out = []
            for i, item in enumerate(raw):
                if not isinstance(item, dict) or set(item) != {"kernel", "filters", "resolution"}:
                    raise GenomeError(f"{source}: {name}[{i}] must be an object with kernel, filters, resolution")
                bad = sorted(k for k, v in item.items() if not is_int(v))
                if bad:
                    raise GenomeError(f"{source}: {name}[{i}].{bad[0]} must be an integer, got"
                                      f" {json.dumps(item[bad[0]])}")
                out.append(ConvLayer(**item))
            return tuple(out)

        try:
            return cls(
                latent_size=data["latent_size"],
                base_resolution=data["base_resolution"],
                resolution=data["resolution"],
                image_channels=data.get("image_channels", 3),
                channels=channels,
                g_layers=layers("g_layers"),
                d_layers=layers("d_layers"),
            )
        except GenomeError as exc:
            raise GenomeError(f"{source}: {exc}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Genome:
        try:
            data = read_json_file(path)
        except OSError as exc:
            raise GenomeError(f"{path}: cannot read genome file ({exc.strerror})") from None
        except JSONFileError as exc:
            raise GenomeError(f"{path}: not a genome file: {exc}; pass the genome.json of a run or one written by"
                              " `dggan genome base`") from None
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_json(cls, text: str, source: str = "genome") -> Genome:
        try:
            data = parse_json(text)
        except JSONFileError as exc:
            raise GenomeError(f"{source}: {exc}") from None
        return cls.from_dict(data, source=source)


# ---------------------------------------------------------------------- layer plans
LayerKind = Literal["dense_in", "conv", "torgb", "fromrgb", "mbstd_conv", "dense", "out"]


@dataclass(frozen=True)
class LayerSpec:
    """One parameterised layer of a network, in forward order.

    ``up``/``down`` say whether the input is upsampled before / the output average-pooled after.
    """

    name: str
    kind: LayerKind
    in_ch: int
    out_ch: int
    kernel: int
    resolution: int
    up: bool = False
    down: bool = False

    @property
    def num_params(self) -> int:
        if self.kind in ("dense_in",):
            return self.in_ch * self.out_ch * 16 + self.out_ch * 16
        if self.kind == "dense":
            return self.in_ch * 16 * self.out_ch + self.out_ch
        if self.kind == "out":
            return self.in_ch * self.out_ch + self.out_ch
        in_ch = self.in_ch + 1 if self.kind == "mbstd_conv" else self.in_ch
        return in_ch * self.out_ch * self.kernel**2 + self.out_ch


def g_plan(genome: Genome, fade_in: bool = False) -> list[LayerSpec]:
    """Generator layers in forward order. With ``fade_in`` the last entry is the old toRGB."""
    ch = genome.channel_map
    plan = [LayerSpec("b4_dense", "dense_in", genome.latent_size, ch[4], 0, 4),
            LayerSpec("b4_conv", "conv", ch[4], ch[4], 3, 4)]
    prev = ch[4]
    stage_out: dict[int, int] = {}
    for res in genome.scales():
        if res > 4:
            plan.append(LayerSpec(f"b{res}_conv0", "conv", prev, ch[res], 3, res, up=True))
            plan.append(LayerSpec(f"b{res}_conv1", "conv", ch[res], ch[res], 3, res))
            prev = ch[res]
        for i, layer in enumerate(genome.g_layers):
            if layer.resolution == res:
                plan.append(LayerSpec(f"grow{i}", "conv", prev, layer.filters, layer.kernel, res))
                prev = layer.filters
        stage_out[res] = prev
    plan.append(LayerSpec(f"torgb{genome.resolution}", "torgb", prev, genome.image_channels, 1, genome.resolution))
    if fade_in:
        old = _fade_source(genome)
        plan.append(LayerSpec(f"torgb{old}", "torgb", stage_out[old], genome.image_channels, 1, old))
    return plan


def d_plan(genome: Genome, fade_in: bool = False) -> list[LayerSpec]:
    """Discriminator layers in forward order. With ``fade_in`` the last entry is the old fromRGB."""
    ch = genome.channel_map
    res = genome.resolution
    plan = [LayerSpec(f"fromrgb{res}", "fromrgb", genome.image_channels, ch[res], 1, res)]
    prev = ch[res]
    for res in reversed(genome.scales()):
        # D grows right after its first conv, so the newest layer at a scale comes first.
        for i, layer in reversed(list(enumerate(genome.d_layers))):
            if layer.resolution == res:
                plan.append(LayerSpec(f"grow{i}", "conv", prev, layer.filters, layer.kernel, res))
                prev = layer.filters
        if res > 4:
            plan.append(LayerSpec(f"b{res}_conv0", "conv", prev, ch[res], 3, res))
            plan.append(LayerSpec(f"b{res}_conv1", "conv", ch[res], ch[res // 2], 3, res, down=True))
            prev = ch[res // 2]
        else:
            plan.append(LayerSpec("b4_conv", "mbstd_conv", prev, ch[4], 3, 4))
            plan.append(LayerSpec("b4_dense", "dense", ch[4], ch[4], 0, 4))
            plan.append(LayerSpec("b4_out", "out", ch[4], 1, 0, 4))
    if fade_in:
        old = _fade_source(genome)
        # The old path joins where block 2*old hands over, whose output width is ch[old].
        plan.append(LayerSpec(f"fromrgb{old}", "fromrgb", genome.image_channels, ch[old], 1, old))
    return plan


def _fade_source(genome: Genome) -> int:
    if genome.resolution <= genome.base_resolution:
        raise GenomeError(f"no fade-in at the base resolution {genome.base_resolution}: nothing to fade from")
    return genome.resolution // 2
