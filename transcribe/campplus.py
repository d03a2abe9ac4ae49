# This file ports the CAM++ speaker-embedding network of 3D-Speaker
# (https://github.com/modelscope/3D-Speaker, speakerlab/models/campplus/DTDNN.py and layers.py,
# speakerlab/process/processor.py), Copyright 3D-Speaker, licensed under the Apache License 2.0
# (http://www.apache.org/licenses/LICENSE-2.0). Changes from the original: inference only (no
# gradient checkpointing, no weight initialisation), type hints and documentation, and the pooling
# split out of the layer stack so that one trunk pass can serve several weighted poolings.
"""CAM++ speaker embeddings (3D-Speaker), with one trunk pass shared by several speakers.

The checkpoint this is written for is 3D-Speaker's `iic/speech_campplus_sv_zh_en_16k-common_advanced`
(`campplus_cn_en_common.pt`): 80 mel bins in, 192-d embeddings out. Module names follow the
original exactly, so its state dict loads with `strict=True`.

    model = load_campplus("models/campplus/campplus_cn_en_common.pt")
    emb = embed(model, chunks, masks)      # (B, 1, N) audio + (B, S, F) masks -> (B, S, 192)

`embed` runs the network up to the frame-level features once per chunk, then pools once per
speaker mask; pyannote's pipeline would run the whole network once per (chunk, speaker).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import Tensor, nn

from transcribe.errors import ModelError

SAMPLE_RATE = 16_000
NUM_MEL_BINS = 80
EMBEDDING_SIZE = 192

__all__ = ["CAMPPlus", "embed", "fbank", "load_campplus", "unit_embedding", "weighted_statistics"]


# --- layers (3D-Speaker speakerlab/models/campplus/layers.py) ---------------------------------


def _nonlinear(config_str: str, channels: int) -> nn.Sequential:
    """The original `get_nonlinear`: e.g. "batchnorm-relu" -> Sequential(batchnorm=..., relu=...)."""
    layers = nn.Sequential()
    for name in config_str.split("-"):
        if name == "relu":
            layers.add_module("relu", nn.ReLU(inplace=True))
        elif name == "prelu":
            layers.add_module("prelu", nn.PReLU(channels))
        elif name == "batchnorm":
            layers.add_module("batchnorm", nn.BatchNorm1d(channels))
        elif name == "batchnorm_":
            layers.add_module("batchnorm", nn.BatchNorm1d(channels, affine=False))
        else:
            raise ValueError(f"unexpected module {name!r} in {config_str!r}")
    return layers


class StatsPool(nn.Module):
    """Mean and unbiased standard deviation over time: (B, C, T) -> (B, 2C)."""

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([x.mean(dim=-1), x.std(dim=-1, unbiased=True)], dim=-1)


class TDNNLayer(nn.Module):
    """1-D convolution then batch norm and ReLU; a negative padding means "same" padding."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        bias: bool = False,
        config_str: str = "batchnorm-relu",
    ) -> None:
        super().__init__()
        if padding < 0:
            if kernel_size % 2 != 1:
                raise ValueError(f"same padding needs an odd kernel size, got {kernel_size}")
            padding = (kernel_size - 1) // 2 * dilation
        self.linear = nn.Conv1d(
            in_channels, out_channels, kernel_size,
            stride=stride, padding=padding, dilation=dilation, bias=bias,
        )
        self.nonlinear = _nonlinear(config_str, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.nonlinear(self.linear(x))


class CAMLayer(nn.Module):
    """Context-aware masking: a local TDNN output gated by utterance- and segment-level context."""

    def __init__(
        self,
        bn_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        bias: bool,
        reduction: int = 2,
        seg_len: int = 100,
    ) -> None:
        super().__init__()
        self.seg_len = seg_len
        self.linear_local = nn.Conv1d(
            bn_channels, out_channels, kernel_size,
            stride=stride, padding=padding, dilation=dilation, bias=bias,
        )
        self.linear1 = nn.Conv1d(bn_channels, bn_channels // reduction, 1)
        self.relu = nn.ReLU(inplace=True)
        self.linear2 = nn.Conv1d(bn_channels // reduction, out_channels, 1)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        y = self.linear_local(x)
        context = x.mean(-1, keepdim=True) + self.seg_pooling(x)
        context = self.relu(self.linear1(context))
        return y * self.sigmoid(self.linear2(context))

    def seg_pooling(self, x: Tensor) -> Tensor:
        """Average over segments of `seg_len` frames, repeated back to every frame of the segment."""
        seg = F.avg_pool1d(x, kernel_size=self.seg_len, stride=self.seg_len, ceil_mode=True)
        shape = seg.shape
        seg = seg.unsqueeze(-1).expand(*shape, self.seg_len).reshape(*shape[:-1], -1)
        return seg[..., : x.shape[-1]]


class CAMDenseTDNNLayer(nn.Module):
    """Bottleneck (BN-ReLU-1x1 conv) then BN-ReLU and a CAM layer; its output is concatenated."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bn_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
        config_str: str = "batchnorm-relu",
    ) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"same padding needs an odd kernel size, got {kernel_size}")
        padding = (kernel_size - 1) // 2 * dilation
        self.nonlinear1 = _nonlinear(config_str, in_channels)
        self.linear1 = nn.Conv1d(in_channels, bn_channels, 1, bias=False)
        self.nonlinear2 = _nonlinear(config_str, bn_channels)
        self.cam_layer = CAMLayer(
            bn_channels, out_channels, kernel_size,
            stride=stride, padding=padding, dilation=dilation, bias=bias,
        )

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear1(self.nonlinear1(x))
        return self.cam_layer(self.nonlinear2(x))


class CAMDenseTDNNBlock(nn.ModuleList):
    """Densely connected CAM-TDNN layers (`tdnnd1`, `tdnnd2`, ...), each adding `out_channels`."""

    def __init__(
        self,
        num_layers: int,
        in_channels: int,
        out_channels: int,
        bn_channels: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        bias: bool = False,
        config_str: str = "batchnorm-relu",
    ) -> None:
        super().__init__()
        for i in range(num_layers):
            layer = CAMDenseTDNNLayer(
                in_channels=in_channels + i * out_channels,
                out_channels=out_channels,
                bn_channels=bn_channels,
                kernel_size=kernel_size,
                stride=stride,
                dilation=dilation,
                bias=bias,
                config_str=config_str,
            )
            self.add_module(f"tdnnd{i + 1}", layer)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self:
            x = torch.cat([x, layer(x)], dim=1)
        return x


class TransitLayer(nn.Module):
    """BN-ReLU then a 1x1 convolution that halves the channels between dense blocks."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = True,
        config_str: str = "batchnorm-relu",
    ) -> None:
        super().__init__()
        self.nonlinear = _nonlinear(config_str, in_channels)
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear(self.nonlinear(x))


class DenseLayer(nn.Module):
    """1x1 convolution then normalisation; accepts (B, C) or (B, C, T)."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        bias: bool = False,
        config_str: str = "batchnorm-relu",
    ) -> None:
        super().__init__()
        self.linear = nn.Conv1d(in_channels, out_channels, 1, bias=bias)
        self.nonlinear = _nonlinear(config_str, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() == 2:
            x = self.linear(x.unsqueeze(dim=-1)).squeeze(dim=-1)
        else:
            x = self.linear(x)
        return self.nonlinear(x)


class BasicResBlock(nn.Module):
    """2-D residual block; `stride` applies to the frequency axis only."""

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(
            in_planes, planes, kernel_size=3, stride=(stride, 1), padding=1, bias=False
        )
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != self.expansion * planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(
                    in_planes, self.expansion * planes,
                    kernel_size=1, stride=(stride, 1), bias=False,
                ),
                nn.BatchNorm2d(self.expansion * planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + self.shortcut(x)
        return F.relu(out)


# --- network (3D-Speaker speakerlab/models/campplus/DTDNN.py) ---------------------------------


class FCM(nn.Module):
    """Front-end convolution module: 2-D ResNet over (freq, time), flattened to (B, C*F/8, T)."""

    def __init__(
        self, num_blocks: tuple[int, int] = (2, 2), m_channels: int = 32, feat_dim: int = 80
    ) -> None:
        super().__init__()
        self.in_planes = m_channels
        self.conv1 = nn.Conv2d(1, m_channels, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(m_channels)
        self.layer1 = self._make_layer(m_channels, num_blocks[0], stride=2)
        self.layer2 = self._make_layer(m_channels, num_blocks[1], stride=2)
        self.conv2 = nn.Conv2d(
            m_channels, m_channels, kernel_size=3, stride=(2, 1), padding=1, bias=False
        )
        self.bn2 = nn.BatchNorm2d(m_channels)
        self.out_channels = m_channels * (feat_dim // 8)

    def _make_layer(self, planes: int, num_blocks: int, stride: int) -> nn.Sequential:
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(BasicResBlock(self.in_planes, planes, s))
            self.in_planes = planes * BasicResBlock.expansion
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x.unsqueeze(1))))
        out = self.layer1(out)
        out = self.layer2(out)
        out = F.relu(self.bn2(self.conv2(out)))
        b, c, f, t = out.shape
        return out.reshape(b, c * f, t)


class CAMPPlus(nn.Module):
    """The CAM++ network, with the parameter names of 3D-Speaker's checkpoints.

    `forward` is the original: (B, T, feat_dim) mean-normalised fbank -> (B, embedding_size).
    It is `pool(frames(feats))[:, 0]`; `pool` also takes per-speaker frame weights.
    Frame-level features come at half the fbank rate (the first TDNN has stride 2): 50 per second.
    """

    def __init__(
        self,
        feat_dim: int = NUM_MEL_BINS,
        embedding_size: int = EMBEDDING_SIZE,
        growth_rate: int = 32,
        bn_size: int = 4,
        init_channels: int = 128,
        config_str: str = "batchnorm-relu",
    ) -> None:
        super().__init__()
        self.feat_dim = feat_dim
        self.embedding_size = embedding_size
        self.head = FCM(feat_dim=feat_dim)
        channels = self.head.out_channels

        self.xvector = nn.Sequential(
            OrderedDict(
                tdnn=TDNNLayer(
                    channels, init_channels, 5,
                    stride=2, dilation=1, padding=-1, config_str=config_str,
                )
            )
        )
        channels = init_channels
        for i, (num_layers, kernel_size, dilation) in enumerate(
            zip((12, 24, 16), (3, 3, 3), (1, 2, 2))
        ):
            block = CAMDenseTDNNBlock(
                num_layers=num_layers,
                in_channels=channels,
                out_channels=growth_rate,
                bn_channels=bn_size * growth_rate,
                kernel_size=kernel_size,
                dilation=dilation,
                config_str=config_str,
            )
            self.xvector.add_module(f"block{i + 1}", block)
            channels = channels + num_layers * growth_rate
            self.xvector.add_module(
                f"transit{i + 1}",
                TransitLayer(channels, channels // 2, bias=False, config_str=config_str),
            )
            channels //= 2
        self.xvector.add_module("out_nonlinear", _nonlinear(config_str, channels))
        self.xvector.add_module("stats", StatsPool())
        self.xvector.add_module(
            "dense", DenseLayer(channels * 2, embedding_size, config_str="batchnorm_")
        )
        self.frame_channels = channels

    def frames(self, feats: Tensor) -> Tensor:
        """(B, T, feat_dim) fbank -> (B, C, T') frame-level features before pooling (C=512)."""
        x = self.head(feats.permute(0, 2, 1))
        for name, layer in self.xvector.named_children():
            if name == "stats":
                break
            x = layer(x)
        return x

    def pool(self, frames: Tensor, weights: Tensor | None = None) -> Tensor:
        """Statistics pooling and the final dense layer: (B, C, T') -> (B, S, embedding_size).

        Without `weights`, this is the original pooling (mean and unbiased std, S = 1).
        `weights` (B, S, F) holds one row of frame weights in [0, 1] per speaker; F may be any
        number of frames spread over the same span as `frames`: it is resampled to T' by
        nearest-neighbour interpolation (as pyannote does). See `weighted_statistics` for the
        statistics and for what a row of zeros gives.
        """
        b, c, t = frames.shape
        if weights is None:
            stats = self.xvector.stats(frames).unsqueeze(1)
        else:
            if weights.dim() != 3 or weights.shape[0] != b:
                raise ValueError(
                    f"weights must be (B={b}, S, F), got {tuple(weights.shape)}"
                )
            weights = weights.to(dtype=frames.dtype, device=frames.device)
            if weights.shape[-1] != t:
                weights = F.interpolate(weights, size=t, mode="nearest")
            stats = weighted_statistics(frames, weights)
        s = stats.shape[1]
        return self.xvector.dense(stats.reshape(b * s, 2 * c)).reshape(b, s, -1)

    def forward(self, feats: Tensor) -> Tensor:
        """(B, T, feat_dim) fbank -> (B, embedding_size), as 3D-Speaker's forward."""
        return self.xvector(self.head(feats.permute(0, 2, 1)))


def weighted_statistics(frames: Tensor, weights: Tensor, eps: float = 1e-8) -> Tensor:
    """Weighted mean and standard deviation over time: (B, C, T), (B, S, T) -> (B, S, 2C).

    mean = sum(w x) / V1 and var = sum(w (x - mean)^2) / (V1 - V2 / V1), with V1 = sum(w) and
    V2 = sum(w^2): the unbiased estimator for reliability weights, which for weights all equal
    is exactly the unbiased `x.std()` of the original StatsPool. (pyannote's weighted StatsPool
    uses the same formula.) A weight row with one non-zero frame has std 0.

    A row whose weights sum to zero (speaker absent from the chunk) falls back to uniform
    weights, i.e. the unweighted statistics of the whole chunk, so the result is always finite;
    callers that must tell such rows apart check `weights.sum(-1) == 0` themselves.
    """
    weights = weights.clamp_min(0)
    empty = weights.sum(dim=-1, keepdim=True) <= 0
    weights = torch.where(empty, torch.ones_like(weights), weights)
    v1 = weights.sum(dim=-1)  # (B, S)
    v2 = weights.square().sum(dim=-1)
    # Shift by the unweighted mean first so that E[x^2] - E[x]^2 does not lose precision.
    centred = frames - frames.mean(dim=-1, keepdim=True)
    sum_x = torch.einsum("bst,bct->bsc", weights, centred)
    sum_x2 = torch.einsum("bst,bct->bsc", weights, centred.square())
    mean_c = sum_x / v1.unsqueeze(-1)
    scatter = (sum_x2 - mean_c * sum_x).clamp_min(0)  # sum w (x - mean)^2
    var = scatter / (v1 - v2 / v1).clamp_min(eps).unsqueeze(-1)
    mean = mean_c + frames.mean(dim=-1).unsqueeze(1)
    return torch.cat([mean, var.sqrt()], dim=-1)


# --- features and inference -------------------------------------------------------------------


def fbank(waveforms: Tensor, sample_rate: int = SAMPLE_RATE) -> Tensor:
    """(B, N) or (B, 1, N) float waveforms in [-1, 1] -> (B, T, 80) mean-normalised log-mel fbank.

    As 3D-Speaker's inference (`FBank(80, 16000, mean_nor=True)`): Kaldi fbank with 80 mel bins,
    no dither, on the waveform as loaded (no 16-bit scaling), minus each utterance's mean over
    time. Other sample rates are resampled to 16 kHz first. T = 1 + (N - 400) // 160 at 16 kHz.
    """
    if waveforms.dim() == 3:
        if waveforms.shape[1] != 1:
            raise ValueError(f"expected mono (B, 1, N) waveforms, got {tuple(waveforms.shape)}")
        waveforms = waveforms[:, 0]
    if waveforms.dim() != 2:
        raise ValueError(f"expected (B, N) or (B, 1, N) waveforms, got {tuple(waveforms.shape)}")
    waveforms = waveforms.float()
    if sample_rate != SAMPLE_RATE:
        waveforms = torchaudio.functional.resample(waveforms, sample_rate, SAMPLE_RATE)
    feats = torch.stack(
        [
            torchaudio.compliance.kaldi.fbank(
                w.unsqueeze(0),
                num_mel_bins=NUM_MEL_BINS,
                sample_frequency=SAMPLE_RATE,
                dither=0.0,
            )
            for w in waveforms
        ]
    )
    return feats - feats.mean(dim=1, keepdim=True)


def load_campplus(path: str | Path, device: str | torch.device = "cpu") -> CAMPPlus:
    """Load a 3D-Speaker CAM++ state dict (strictly) into a `CAMPPlus` in eval mode.

    The embedding size is read from the checkpoint (192 for the zh/en common model).
    Raises ModelError if the file is missing, unreadable or its keys do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"CAM++ weights not found at {path}; pull the embedding model first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        raise ModelError(f"cannot read CAM++ weights {path}: {exc}".splitlines()[0]) from exc
    if not isinstance(state, dict) or "xvector.dense.linear.weight" not in state:
        raise ModelError(f"{path} is not a CAM++ state dict (no xvector.dense.linear.weight)")
    model = CAMPPlus(embedding_size=int(state["xvector.dense.linear.weight"].shape[0]))
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ModelError(
            f"{path} does not match the CAM++ network: {len(missing)} missing keys "
            f"{missing[:3]}, {len(unexpected)} unexpected keys {unexpected[:3]}"
        )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # same keys, different shapes
        detail = " ".join(line.strip() for line in str(exc).splitlines()[1:2])
        raise ModelError(f"{path} does not match the CAM++ network: {detail}"[:300]) from exc
    return model.to(device).eval()


def embed(model: CAMPPlus, waveforms: Tensor, weights: Tensor | None = None) -> Tensor:
    """Speaker embeddings: (B, 1, N) 16 kHz waveforms [+ (B, S, F) frame weights] -> (B, S, D).

    The trunk (fbank, FCM, TDNN blocks) runs once per waveform; only the pooling and the last
    dense layer run once per speaker. With `weights=None`, S = 1 and the result equals
    `model(fbank(waveforms))`. The weights' F frames are taken to span the whole waveform.
    Runs without gradients, on the model's device.
    """
    device = next(model.parameters()).device
    with torch.no_grad():
        feats = fbank(waveforms.to(device))
        return model.pool(model.frames(feats), weights)


def unit_embedding(model: CAMPPlus, samples: np.ndarray) -> np.ndarray:
    """One unit-norm embedding (float32) of one 16 kHz mono waveform."""
    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))[None, None]
    out = embed(model, x).float().cpu().numpy()[0, 0]
    return out / max(float(np.linalg.norm(out)), 1e-12)
