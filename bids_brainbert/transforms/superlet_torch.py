"""The torch superlet kernel: the same folded-band algorithm as :mod:`.superlet_numpy`, on CPU or CUDA.

The plan (bands, gains, weights) comes from :mod:`.superlet_plan`; its arrays are copied to the device once and
kept there for every further channel batch and chunk. Gains that the plan does not cache are computed on the device.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..devices import resolve_device
from .superlet_plan import SuperletPlan




class TorchSuperletKernel:
    """Callable ``(segment, plan, n_frames) -> (channels, n_freqs, n_frames)`` numpy array, like
    :func:`.superlet_numpy.folded_log_superlet`."""

    def __init__(self, device: Any = None):
        self.device = resolve_device(device)
        self._on_device: dict[int, dict] = {}

    def _device_plan(self, plan: SuperletPlan) -> dict:
        import torch

        key = id(plan)
        if key not in self._on_device:
            real = torch.float32 if plan.dtype == np.float32 else torch.float64
            index = np.arange(plan.spectrum_start, plan.spectrum_stop) % plan.n_fft
            mirrored = index > plan.n_fft // 2
            source = np.where(mirrored, plan.n_fft - index, index)
            gains = None
            if plan.cached_gains is not None:
                gains = torch.as_tensor(plan.cached_gains, device=self.device)
            self._on_device[key] = {
                "plan": plan, "real": real,
                "source": torch.as_tensor(source, device=self.device),
                "mirrored": torch.as_tensor(mirrored, device=self.device),
                "gains": gains,
                "weights": [(torch.as_tensor(f, device=self.device), torch.as_tensor(w, device=self.device))
                            for f, w in plan.group_weights],
                "log_scale": torch.as_tensor(plan.log_scale, device=self.device),
            }
        return self._on_device[key]

    def _gain(self, state: dict, index: int):
        """(rows, 2M) gain of band ``index`` laid out on its whole rows, each value twice (it multiplies the spectrum
        viewed as interleaved re, im reals), from the plan's cached gains or computed here."""
        import torch

        plan, band = state["plan"], state["plan"].bands[index]
        if state["gains"] is not None:
            first = int(plan.band_arrays["gain_offsets"][index])
            gain = state["gains"][first:first + band.width]
        else:
            bins = torch.arange(band.start, band.start + band.width, device=self.device, dtype=torch.float64)
            freqs = bins * (plan.sfreq / plan.n_fft)
            gain = torch.zeros_like(freqs)
            for image in range(-2, 3):  # the sampled wavelet's aliased images, as in sampled_morlet_spectrum
                gain += torch.exp(-0.5 * ((freqs - band.centre_hz + image * plan.sfreq) / band.sd_hz) ** 2)
            gain = gain.to(state["real"])
        rows = torch.zeros(band.rows * plan.n_folded, dtype=state["real"], device=self.device)
        offset = band.start - band.row_start
        rows[offset:offset + band.width] = gain
        return rows.repeat_interleave(2).reshape(band.rows, 2 * plan.n_folded)

    def __call__(self, segment: np.ndarray, plan: SuperletPlan, n_frames: int) -> np.ndarray:
        import torch

        state = self._device_plan(plan)
        with torch.no_grad():
            x = torch.as_tensor(np.ascontiguousarray(segment), device=self.device).to(state["real"])
            n_channels, m = x.shape[0], plan.n_folded
            half = torch.fft.rfft(x, n=plan.n_fft, dim=-1)
            spectrum = half[:, state["source"]]
            spectrum[:, state["mirrored"]] = spectrum[:, state["mirrored"]].conj()
            spectrum = torch.view_as_real(spectrum).reshape(n_channels, -1)  # interleaved (re, im)
            log_sum = torch.zeros((n_channels, plan.n_freqs, n_frames), dtype=state["real"], device=self.device)
            tiny = torch.finfo(state["real"]).tiny
            for group, (start, stop) in enumerate(plan.groups):
                folded = torch.empty((n_channels, stop - start, 2 * m), dtype=state["real"], device=self.device)
                for row, band in enumerate(plan.bands[start:stop]):
                    first = 2 * (band.row_start - plan.spectrum_start)
                    rows = spectrum[:, first:first + 2 * band.rows * m].reshape(n_channels, band.rows, 2 * m)
                    folded[:, row] = torch.einsum("crk,rk->ck", rows, self._gain(state, start + row))
                response = torch.fft.ifft(torch.view_as_complex(folded.reshape(n_channels, stop - start, m, 2)),
                                          dim=-1)[..., :n_frames]
                power = (response.real ** 2 + response.imag ** 2).clamp_min(tiny).log()
                freqs, weights = state["weights"][group]
                log_sum[:, freqs] += torch.matmul(weights, power)
            log_sum += state["log_scale"][None, :, None]
            return log_sum.cpu().numpy()
