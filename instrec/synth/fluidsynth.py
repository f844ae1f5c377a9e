"""libfluidsynth driven sample-accurately from Python: note events in, float audio out.

One long-lived `Synth` per process (loading FluidR3 takes ~0.3 s; a note renders at
~500x real time). Reverb and chorus are off so every render is dry and reproducible;
audio is read as float (fluid_synth_write_float), which unlike the 16-bit path has no
dither noise, so the same events always give the same samples. Events are applied
between rendered blocks, so timing is exact to libfluidsynth's 64-sample block.
"""

from __future__ import annotations

import ctypes
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from instrec.errors import InstrecError
from instrec.synth.soundfonts import Preset

GAIN = 0.5  # libfluidsynth master gain: a loud single note peaks around -6 dBFS
BREATH_CC = 2  # MuseScore's "Expr." presets are silent unless this controller is sent
PAN_CC = 10
# (controller, value) set on every rendered channel first: reset all, volume, pan,
# expression, breath; so no render inherits the controllers of an earlier one.
_CONTROLLER_DEFAULTS = ((121, 0), (7, 100), (PAN_CC, 64), (11, 127), (BREATH_CC, 127))
_FIRST_PARKING_CHANNEL = 16  # channels 16-255 only hold presets (MIDI uses 0-15)
_PARKING_CHANNELS = 240
_BLOCK = 64  # libfluidsynth renders (and applies events) in blocks of this many samples
_FLUSH_SAMPLES = 512  # samples rendered and dropped after a render (8 blocks)
_SETTLE_SAMPLES = 64  # one block of priming notes, rendered and dropped
_PRIME_KEYS = tuple(range(24, 109, 6))  # 15 keys per channel: enough voices for any render


@dataclass(frozen=True, order=True)
class Event:
    """A MIDI event at a sample position: 'on' (key, velocity), 'off' (key) or 'cc'."""

    sample: int
    kind: str  # "off" sorts before "on" and "cc" at the same sample: a repeated key restarts
    channel: int
    key: int
    value: int = 0


def _library_functions() -> tuple[ctypes._CFuncPtr, ctypes._CFuncPtr]:  # type: ignore[name-defined]
    """libfluidsynth's float writer and generator setter, which pyfluidsynth does not wrap."""
    import fluidsynth

    library = ctypes.CDLL(fluidsynth.lib)
    write = library.fluid_synth_write_float
    buffer, number = ctypes.c_void_p, ctypes.c_int
    # synth, frames, then (buffer, offset, increment) for the left and the right channel
    write.argtypes = [buffer, number, buffer, number, number, buffer, number, number]
    write.restype = ctypes.c_int
    set_gen = library.fluid_synth_set_gen  # synth, channel, generator, value
    set_gen.argtypes = [buffer, number, number, ctypes.c_float]
    set_gen.restype = ctypes.c_int
    return write, set_gen


class Synth:
    """A libfluidsynth instance at `sample_rate` Hz with soundfonts loaded on demand."""

    def __init__(self, sample_rate: int) -> None:
        import fluidsynth

        self.sample_rate = sample_rate
        self._fs = fluidsynth.Synth(
            gain=GAIN,
            samplerate=sample_rate,
            **{
                "synth.reverb.active": 0,
                "synth.chorus.active": 0,
                "synth.polyphony": 512,
                "synth.dynamic-sample-loading": 1,  # MuseScore's .sf3 decodes 8 s when loaded whole
            },
        )
        self._write, self._set_gen = _library_functions()
        self._soundfonts: dict[str, int] = {}
        self._current: dict[int, Preset] = {}  # channel -> preset selected there
        self._parked: dict[Preset, int] = {}  # preset -> spare channel holding it
        self._written = 0  # samples read so far: each render starts on a block boundary

    def close(self) -> None:
        self._fs.delete()

    def _select(self, channel: int, preset: Preset) -> None:
        """Put `preset` on `channel`, keeping it parked on a spare channel as well: with
        dynamic sample loading, libfluidsynth frees a preset's samples as soon as no
        channel holds it, and reloading (decoding Ogg for .sf3) costs milliseconds."""
        if preset not in self._parked:
            if len(self._parked) == _PARKING_CHANNELS:
                oldest = next(iter(self._parked))
                park = self._parked.pop(oldest)
            else:
                park = _FIRST_PARKING_CHANNEL + len(self._parked)
            self._program_select(park, preset)
            self._parked[preset] = park
        if self._current.get(channel) != preset:
            self._program_select(channel, preset)
            self._current[channel] = preset

    def _program_select(self, channel: int, preset: Preset) -> None:
        sfid = self._soundfont_id(preset.soundfont)
        if self._fs.program_select(channel, sfid, preset.bank, preset.program) != 0:
            raise InstrecError(f"{preset.label}: libfluidsynth cannot select this preset")

    def _soundfont_id(self, path: str) -> int:
        if path not in self._soundfonts:
            sfid = self._fs.sfload(path)
            if sfid < 0:
                raise InstrecError(f"{path}: libfluidsynth cannot load this soundfont")
            self._soundfonts[path] = sfid
        return self._soundfonts[path]

    def render(
        self,
        programs: dict[int, Preset],
        events: Iterable[Event],
        n_samples: int,
        generators: dict[int, dict[int, float]] | None = None,
    ) -> np.ndarray:
        """Render `n_samples` of stereo audio, (n_samples, 2) float32, from a clean state.

        `programs` maps MIDI channel -> preset; `generators` channel -> {SoundFont
        generator number: offset} (e.g. 34: attack in timecents), added to what the
        preset says. Controllers (which also clears generator offsets) are reset and the
        voices primed first, so a render depends only on its arguments.
        """
        for channel, preset in programs.items():
            self._select(channel, preset)
            for controller, value in _CONTROLLER_DEFAULTS:
                self._fs.cc(channel, controller, value)
            for generator, offset in (generators or {}).get(channel, {}).items():
                self._set_gen(self._fs.synth, channel, generator, offset)
        self._prime(sorted(programs))
        out = np.zeros((n_samples, 2), dtype=np.float32)  # (samples, channels)
        done = 0
        for event in sorted(events):
            done = self._fill(out, done, min(event.sample, n_samples))
            if event.kind == "on":
                self._fs.noteon(event.channel, event.key, event.value)
            elif event.kind == "off":
                self._fs.noteoff(event.channel, event.key)
            else:
                self._fs.cc(event.channel, event.key, event.value)
        self._fill(out, done, n_samples)
        self._silence()
        return out

    def playable_keys(
        self, preset: Preset, keys: Iterable[int], seconds: float, floor: float
    ) -> tuple[int, ...]:
        """Keys where a held velocity-100 note of `seconds` peaks at or above `floor`
        (linear full scale): soundfonts leave some keys of some presets silent."""
        n = round(seconds * self.sample_rate)
        return tuple(
            key
            for key in keys
            if np.abs(self.render({0: preset}, [Event(0, "on", 0, key, 100)], n)).max() >= floor
        )

    def _prime(self, channels: list[int]) -> None:
        """Play every channel's preset briefly and silence it, output dropped.

        A libfluidsynth voice starts with a trace of the preset it last played (its first
        64-sample block differs by up to -50 dBFS). Priming the voices the render will
        use with its own presets makes the output depend on the render's arguments only.
        """
        for channel in channels:
            for key in _PRIME_KEYS:
                self._fs.noteon(channel, key, 100)
        self._drop(_SETTLE_SAMPLES)
        self._silence()

    def _silence(self) -> None:
        """Stop every voice, render past libfluidsynth's fade-out ramp, which would
        otherwise leak into the next render, and on to a block boundary, so the next
        render's events fall at the same place within blocks whatever came before."""
        self._fs.all_sounds_off(-1)
        self._drop(_FLUSH_SAMPLES + (-self._written) % _BLOCK)

    def _drop(self, n_samples: int) -> None:
        self._fill(np.zeros((n_samples, 2), dtype=np.float32), 0, n_samples)

    def _fill(self, out: np.ndarray, start: int, stop: int) -> int:
        """Render samples [start, stop) of `out` in place; returns `stop`."""
        if stop > start:
            view = out[start:stop]
            address = view.ctypes.data
            # left samples at offset 0, right at offset 1, both with stride 2 floats
            self._write(self._fs.synth, stop - start, address, 0, 2, address, 1, 2)
            self._written += stop - start
        return max(start, stop)
