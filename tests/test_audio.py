"""Audio in and out: real-world files, bad input, atomic writes, loudness."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import SR, melody
from restorelab import audio as A
from restorelab.audio import AudioError, load_audio, match_loudness, write_wav


def sine(freq_hz: float, duration_s: float, sample_rate: int, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(duration_s * sample_rate)) / sample_rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("WAV", "PCM_24"), ("WAV", "FLOAT"),
                                         ("FLAC", "PCM_24"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
@pytest.mark.parametrize("rate", [22050, 32000, 48000])
def test_formats_and_rates_load_at_the_working_rate(tmp_path, fmt, subtype, rate):
    x = sine(440.0, 1.0, rate)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), rate, subtype=subtype, format=fmt)
    clip = load_audio(path)
    assert clip.sample_rate == A.WORKING_RATE and clip.source_rate == rate
    assert clip.audio.dtype == np.float32 and clip.channels == 2
    # Length scales with the rate (lossy codecs may pad by a frame or two).
    assert abs(clip.audio.shape[-1] - A.WORKING_RATE) < 0.06 * A.WORKING_RATE
    # The level survives: RMS of a 0.5-amplitude sine is 0.354 (lossy: within 0.5 dB).
    rms = np.sqrt(np.mean(clip.audio[0, 4410:-4410] ** 2))
    assert 20 * np.log10(rms / (0.5 / np.sqrt(2))) == pytest.approx(0.0, abs=0.5)
    assert any("resampled" in note for note in clip.notes) == (rate != A.WORKING_RATE)


def test_float_peaks_above_full_scale_are_kept(tmp_path):
    x = sine(440.0, 1.0, SR, amplitude=1.54)
    path = tmp_path / "hot.wav"
    sf.write(path, x, SR, subtype="FLOAT")
    clip = load_audio(path)
    assert np.max(np.abs(clip.audio)) == pytest.approx(1.54, rel=1e-4)


def test_mono_stays_mono_and_stereo_stays_stereo(tmp_path):
    x = sine(440.0, 0.5, SR)
    sf.write(tmp_path / "m.wav", x, SR)
    sf.write(tmp_path / "s.wav", np.stack([x, -x], 1), SR)
    assert load_audio(tmp_path / "m.wav").channels == 1
    stereo = load_audio(tmp_path / "s.wav").audio
    np.testing.assert_allclose(stereo[1], -stereo[0], atol=1e-4)


def test_many_channels_error_or_reported_downmix(tmp_path):
    x = sine(440.0, 0.5, SR)
    path = tmp_path / "six.wav"
    sf.write(path, np.stack([x] * 6, 1), SR)
    with pytest.raises(AudioError, match=r"six\.wav.*6 channels"):
        load_audio(path)
    clip = load_audio(path, downmix=True)
    assert clip.channels == 2 and any("downmixed 6 channels" in n for n in clip.notes)


def _truncated(tmp_path, suffix, fmt, rate=SR, subtype=None):
    path = tmp_path / f"full{suffix}"
    sf.write(path, sine(440.0, 1.0, rate), rate, format=fmt, subtype=subtype)
    data = path.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[: len(data) // 2])
    return cut


def _bytes(path, data):
    path.write_bytes(data)
    return path


BAD_INPUTS = {
    "empty": (lambda p: _bytes(p / "empty.wav", b""), "empty file"),
    "garbage": (lambda p: _bytes(p / "noise.wav", os.urandom(4096)), "not a readable audio file"),
    "garbage_mp3": (lambda p: _bytes(p / "noise.mp3", b"ID3" + os.urandom(4096)),
                    "not a readable audio file|could not be decoded|truncated|no samples|too short"),
    "truncated_wav": (lambda p: _truncated(p, ".wav", "WAV"), "truncated"),
    "truncated_flac": (lambda p: _truncated(p, ".flac", "FLAC"), "truncated|could not be decoded"),
    # Half an Ogg Opus stream is still refused: the 20 ms allowed to its decoder is not half a second.
    "truncated_opus": (lambda p: _truncated(p, ".opus", "OGG", 48000, "OPUS"),
                       "truncated|could not be decoded|not a readable audio file"),
    "nan": (lambda p: sf.write(p / "nan.wav", np.full(SR, np.nan, np.float32), SR, subtype="FLOAT")
            or p / "nan.wav", "NaN or Inf"),
    "inf": (lambda p: sf.write(p / "inf.wav", np.r_[np.zeros(SR), np.inf].astype(np.float32), SR,
                               subtype="FLOAT") or p / "inf.wav", "NaN or Inf"),
    "zero_length": (lambda p: sf.write(p / "zero.wav", np.zeros(0, np.float32), SR) or p / "zero.wav",
                    "no samples"),
    "one_sample": (lambda p: sf.write(p / "one.wav", np.zeros(1, np.float32), SR) or p / "one.wav",
                   "too short: 1 sample"),
    "absurd_rate": (lambda p: sf.write(p / "rate.wav", np.zeros(1000, np.float32), 1000) or p / "rate.wav",
                    "sample rate 1000 Hz"),
    "missing": (lambda p: p / "nowhere.wav", "no such file"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_one_clear_error(tmp_path, case):
    make, message = BAD_INPUTS[case]
    path = make(tmp_path)
    with pytest.raises(AudioError, match=message) as info:
        load_audio(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_too_long_is_refused_before_decoding(tmp_path):
    path = tmp_path / "long.wav"
    sf.write(path, np.zeros(3 * SR, np.float32), SR)
    with pytest.raises(AudioError, match="too long: 3.0 s; the limit is 2 s"):
        load_audio(path, max_duration_s=2.0)


def test_write_wav_round_trip_keeps_floats(tmp_path):
    x = np.stack([sine(440, 0.5, SR, 1.3), sine(660, 0.5, SR)])
    path = write_wav(tmp_path / "out" / "x.wav", x, SR)
    back, rate = sf.read(path, dtype="float32", always_2d=True)
    assert rate == SR
    np.testing.assert_array_equal(back.T, x)
    assert [p.name for p in path.parent.iterdir()] == ["x.wav"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_write_wav_failure_leaves_nothing_and_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "x.wav"
    write_wav(target, np.zeros((1, 100), np.float32), SR)
    before = target.read_bytes()

    def broken_write(fd, data, *args, **kwargs):  # write_wav hands libsndfile the file's descriptor
        os.write(fd, b"RIFF half a header")
        raise OSError("disk full")

    monkeypatch.setattr(A.sf, "write", broken_write)
    with pytest.raises(OSError, match="disk full"):
        write_wav(target, np.ones((1, 100), np.float32), SR)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["x.wav"]


def test_loudness_of_a_known_sine():
    """BS.1770: a 997 Hz full-scale sine in one channel reads -3.01 LUFS."""
    x = sine(997.0, 5.0, 48000, amplitude=1.0)
    assert A.loudness_lufs(x, 48000) == pytest.approx(-3.01, abs=0.05)


@pytest.mark.parametrize("channels", [1, 2])
def test_loudness_a_block_at_a_time_is_pyloudnorms_over_the_whole_clip(channels, monkeypatch):
    """The filters' state carried across 5000-sample blocks and the gating blocks summed from their
    pieces give pyloudnorm's number for the whole clip, fade-in and odd length included."""
    import pyloudnorm

    n = 7 * SR + 123
    x = (0.3 * np.random.default_rng(channels).standard_normal((channels, n)) * np.linspace(0, 1, n) ** 3)
    x = x.astype(np.float32)
    expected = pyloudnorm.Meter(SR).integrated_loudness(x.T.astype(np.float64))
    assert A.loudness_lufs(x, SR) == pytest.approx(expected, abs=1e-9)
    monkeypatch.setattr(A, "LOUDNESS_BLOCK_SAMPLES", 5000)
    assert A.loudness_lufs(x, SR) == pytest.approx(expected, abs=1e-9)


def test_loudness_of_silence_and_short_clips():
    assert A.loudness_lufs(np.zeros((2, SR), np.float32), SR) == float("-inf")
    short = sine(997.0, 0.2, SR, amplitude=1.0)  # shorter than one 400 ms block
    assert A.loudness_lufs(short, SR) == pytest.approx(-3.0, abs=0.3)


@pytest.mark.parametrize("target", [-30.0, -23.0, -16.0])
def test_match_loudness_hits_its_target(target):
    x = np.stack([melody(4.0), melody(4.0, seed=3)]) * 0.2
    result = match_loudness(x, SR, target_lufs=target, true_peak_ceiling_dbtp=0.0)
    assert not result.limited_by_peak
    assert A.loudness_lufs(result.audio, SR) == pytest.approx(target, abs=0.05)
    assert result.loudness_lufs == pytest.approx(target, abs=0.05)


def test_match_loudness_respects_the_true_peak_ceiling():
    x = melody(4.0)[None]
    result = match_loudness(x, SR, target_lufs=-5.0, true_peak_ceiling_dbtp=-1.0)
    assert result.limited_by_peak
    assert A.true_peak_dbtp(result.audio, SR) == pytest.approx(-1.0, abs=0.05)
    assert result.loudness_lufs < -5.0


def test_true_peak_sees_intersample_peaks():
    """A sine at fs/4 sampled at 45 degrees peaks between samples, 3 dB above them."""
    n = np.arange(SR)
    x = np.sin(2 * np.pi * n / 4 + np.pi / 4).astype(np.float32)
    sample_peak_db = 20 * np.log10(np.max(np.abs(x)))
    assert sample_peak_db == pytest.approx(-3.01, abs=0.01)
    assert A.true_peak_dbtp(x, SR) == pytest.approx(0.0, abs=0.1)


def test_find_audio_files_walks_folders(tmp_path):
    (tmp_path / "a").mkdir()
    for name in ("a/1.wav", "a/2.flac", "a/notes.txt", "3.mp3"):
        (tmp_path / name).write_bytes(b"x")
    found = A.find_audio_files([tmp_path / "a", tmp_path / "3.mp3"])
    assert [p.name for p in found] == ["1.wav", "2.flac", "3.mp3"]


MUSICGEN_CLIPS = Path(__file__).resolve().parents[2] / "shared" / "data" / "musicgen-clips"


@pytest.mark.skipif(not MUSICGEN_CLIPS.is_dir(), reason="the shared MusicGen clips are not beside this checkout")
def test_real_musicgen_float_outputs_keep_their_peaks():
    """Real MusicGen float WAVs peak above 1.0; loading (and resampling to 44.1 kHz) must not clip them."""
    hot = 0
    for path in sorted(MUSICGEN_CLIPS.glob("*.wav")):
        raw, rate = sf.read(path, dtype="float32", always_2d=True)
        clip = load_audio(path)
        raw_peak = float(np.max(np.abs(raw)))
        # Resampling can raise a peak (intersample overshoot of already-clipped
        # material reaches +9 % here) but never cuts it.
        assert 0.97 * raw_peak <= float(np.max(np.abs(clip.audio))) <= 1.15 * raw_peak
        hot += raw_peak > 1.0
    assert hot >= 5
