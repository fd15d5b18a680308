"""Training: pair making, loss known answers, and a short real run that writes a loadable checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import band_level_db, snr_db

from restorelab import cli
from restorelab.unet.corpus import MANIFEST_COLUMNS
from restorelab import degrade as dg
from restorelab.unet.losses import band_loss, mrstft_loss, shortfall_sdr_loss, sisdr_loss
from restorelab.unet.train import (HISS_BAND_LIMIT_HZ, MIN_HISS_SNR_DB, PoolFolderError, TrainSettings,
                                   codec_pair, degrade_for_denoising, draw_excerpt, load_corpus, make_batch,
                                   make_pool, musicgen_chain, shared_pool)
from restorelab.unet.model import load_checkpoint

SR = 44100


@pytest.fixture(scope="module")
def corpus() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(4 * SR) / SR
    tone = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((220.0, 440.0, 3000.0, 12000.0, 18000.0), 1))
    return [np.stack([tone, tone]).astype(np.float32) * 0.1 + 0.01 * rng.standard_normal((2, t.size)).astype(np.float32)]


@pytest.fixture
def cache(tmp_path, corpus):
    """A built training cache of one MIDI render (the tones), reaching 20 kHz."""
    folder = tmp_path / "cache"
    (folder / "midi").mkdir(parents=True)
    sf.write(folder / "midi" / "tones.flac", corpus[0].T, SR, subtype="PCM_24")
    (folder / "manifest.tsv").write_text("\t".join(MANIFEST_COLUMNS) + "\n"
                                        "midi/tones.flac\tmidi\tfreedoom\tBSD\t4.00\t20000\n")
    return folder


@pytest.mark.parametrize("bad, message", [
    (dict(domains=("c",)), r"unknown domains \['c'\]"), (dict(terms=("perceptual",)), "unknown loss terms"),
    (dict(musicgen_share=-0.1), "musicgen_share must be within"), (dict(sisdr_weight=-1.0), "must not be negative"),
    (dict(task="upsample"), "task must be one of"), (dict(max_hiss_snr_db=18.0), "must be above 18"),
    (dict(hiss_band_limit_share=1.5), "hiss_band_limit_share must be within"),
    (dict(hiss_colours=("blue",)), "hiss_colours must be some of"), (dict(hiss_colours=()), "must be some of")])
def test_settings_reject_unknown_names(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**bad)


def test_each_task_defaults_to_its_own_loss_terms():
    assert TrainSettings(task="denoise").terms == ("hf", "dnh", "sisdr")
    assert TrainSettings(task="bwe").terms == ("hf", "lsd")
    assert TrainSettings(task="bwe", terms=()).terms == ()


def test_excerpts_are_mono_at_a_training_level(corpus):
    rng = np.random.default_rng(1)
    for _ in range(5):
        piece = draw_excerpt(corpus, SR, rng)
        rms_db = 20 * np.log10(np.sqrt(np.mean(piece ** 2)))
        assert piece.shape == (1, SR) and -30.01 <= rms_db <= -13.99


@pytest.mark.parametrize("top", [19.0, 60.0])
def test_hiss_snr_is_drawn_up_to_the_set_maximum(corpus, top):
    rng = np.random.default_rng(2)
    snrs = []
    for _ in range(20):
        clean = draw_excerpt(corpus, SR, rng)
        noisy, target = degrade_for_denoising(clean, "hiss", rng, TrainSettings(max_hiss_snr_db=top,
                                                                               hiss_band_limit_share=0.0))
        assert target is clean
        snrs.append(snr_db(clean, noisy))
    assert MIN_HISS_SNR_DB - 0.01 <= min(snrs) and max(snrs) <= top + 0.01
    assert max(snrs) - min(snrs) > (top - MIN_HISS_SNR_DB) / 2  # the range is drawn across, not pinned


@pytest.mark.parametrize("colour", ["white", "pink"])
def test_hiss_with_one_colour_and_no_band_limit_draws_as_before(corpus, colour):
    # The draws of the recipe before colours and band limits: SNR, high-pass, then the noise.
    clean = corpus[0][:1, : SR]
    noisy, target = degrade_for_denoising(clean, "hiss", np.random.default_rng(5),
                                          TrainSettings(hiss_colours=(colour,), hiss_band_limit_share=0.0))
    rng = np.random.default_rng(5)
    snr, highpass = rng.uniform(MIN_HISS_SNR_DB, 40.0), rng.uniform(2000, 8000)
    expected = dg.additive_noise(clean, SR, rng, snr_db=snr, color=colour, highpass_hz=highpass)
    np.testing.assert_array_equal(noisy, expected)
    assert target is clean


def test_band_limited_hiss_ends_with_the_music_and_the_target_is_limited_alike(corpus):
    rng = np.random.default_rng(6)
    settings = TrainSettings(hiss_band_limit_share=1.0)
    for _ in range(4):
        clean = draw_excerpt(corpus, SR, rng)
        noisy, target = degrade_for_denoising(clean, "hiss", rng, settings)
        top = HISS_BAND_LIMIT_HZ[1] + 200.0
        assert band_level_db(noisy, clean, top, 22050.0) < -60  # the hiss went with the band
        assert band_level_db(target, clean, top, 22050.0) < -60  # the model is not asked to extend
        # Below the lowest cutoff the target is the clean audio and the difference is the hiss.
        assert band_level_db(target, clean, 100.0, HISS_BAND_LIMIT_HZ[0] - 300.0) == pytest.approx(0.0, abs=0.05)
        # The limit takes the hiss above the cutoff with it: up to about 4 dB of a white hiss's power.
        assert MIN_HISS_SNR_DB - 0.5 <= snr_db(target, noisy) <= 40.0 + 4.0


def test_corpus_weights_follow_duration_or_the_recording_share(tmp_path, corpus):
    (tmp_path / "midi").mkdir()
    (tmp_path / "recordings").mkdir()
    sf.write(tmp_path / "midi" / "a.flac", corpus[0].T, SR, subtype="PCM_24")  # 4 s
    sf.write(tmp_path / "recordings" / "b.flac", corpus[0][:, : SR].T, SR, subtype="PCM_24")  # 1 s
    (tmp_path / "manifest.tsv").write_text("\t".join(MANIFEST_COLUMNS) + "\n"
                                           "midi/a.flac\tmidi\tfreedoom\tBSD\t4.00\t20000\n"
                                           "recordings/b.flac\trecording\twesnoth\tGPL\t1.00\t20000\n")
    quiet = lambda line: None  # noqa: E731
    clips, weights = load_corpus(tmp_path, quiet)
    assert len(clips) == 2 and weights == pytest.approx([0.8, 0.2])
    assert load_corpus(tmp_path, quiet, recording_share=0.5)[1] == pytest.approx([0.5, 0.5])
    assert load_corpus(tmp_path, quiet, recording_share=0.9)[1] == pytest.approx([0.1, 0.9])
    # A source with no share is not even read.
    only, only_weights = load_corpus(tmp_path, quiet, recording_share=1.0)
    assert len(only) == 1 and only[0].shape[-1] == SR and only_weights == pytest.approx([1.0])
    assert load_corpus(tmp_path, quiet, recording_share=0.0)[0][0].shape[-1] == 4 * SR
    # Drawing follows the weights: a weight of zero is never drawn.
    whistle = np.sin(2 * np.pi * 5000.0 * np.arange(4 * SR) / SR).astype(np.float32)[None]
    rng = np.random.default_rng(4)
    for chosen, peak_hz in ((0, 5000.0), (1, 220.0)):
        weights = np.eye(2)[chosen]
        for _ in range(3):
            piece = draw_excerpt([whistle, corpus[0]], SR // 4, rng, weights=weights)[0]
            assert np.argmax(np.abs(np.fft.rfft(piece))) * 4 == pytest.approx(peak_hz, abs=8)
    with pytest.raises(ValueError, match="recording_share"):
        TrainSettings(recording_share=1.5)


def test_silent_corpus_is_reported():
    with pytest.raises(RuntimeError, match="non-silent"):
        draw_excerpt([np.zeros((2, 3 * SR), np.float32)], SR, np.random.default_rng(0))


def test_bwe_batches_have_nothing_above_their_cutoff(corpus):
    settings = TrainSettings(task="bwe", batch=3, segment_s=0.5)
    degraded, target, _, plans = make_batch(corpus, settings, np.random.default_rng(2))
    assert degraded.shape == target.shape == (3, SR // 2) and len(plans) == 3
    for audio, kc in zip(degraded.numpy(), [plan.cutoff_bin for plan in plans]):
        spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size))) ** 2
        freqs = np.fft.rfftfreq(audio.size, 1 / SR)
        # The plan starts where the spectrum begins to fall, at most 1.5 kHz under the wall.
        cutoff_hz = kc * SR / 2048
        assert spectrum[freqs > cutoff_hz + 1800].sum() < 1e-8 * spectrum.sum()


def _band_power(audio: np.ndarray, low_hz: float, high_hz: float) -> float:
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.shape[-1]))) ** 2
    freqs = np.fft.rfftfreq(audio.shape[-1], 1 / SR)
    return float(spectrum[..., (freqs >= low_hz) & (freqs < high_hz)].sum())


def test_bwe_batches_follow_the_musicgen_share_and_stop_frequency(corpus):
    settings = TrainSettings(task="bwe", batch=2, segment_s=0.5, musicgen_share=1.0, max_frequency_hz=18000.0)
    degraded, target, _, plans = make_batch(corpus, settings, np.random.default_rng(6))
    # The same draws by hand: excerpt, share draw, then the chain.
    rng = np.random.default_rng(6)
    clean = draw_excerpt(corpus, SR // 2, rng)
    assert rng.random() < 1.0
    np.testing.assert_array_equal(degraded[0].numpy(), musicgen_chain(clean, rng)[0])
    np.testing.assert_array_equal(target[0].numpy(), clean[0])
    stop_bin = int(np.ceil(18000.0 / (SR / 2048)))
    for plan in plans:
        assert np.all(plan.gain[stop_bin:] == 0) and np.any(plan.gain[plan.cutoff_bin:stop_bin] > 0)


def test_do_no_harm_share_is_clean_pairs(corpus):
    settings = TrainSettings(batch=40, segment_s=0.2, clean_share=0.5)
    degraded, target, is_clean, _ = make_batch(corpus, settings, np.random.default_rng(3))
    assert 5 < int(is_clean.sum()) < 35
    assert torch.equal(degraded[is_clean], target[is_clean])
    assert not torch.equal(degraded[~is_clean], target[~is_clean])


def test_losses_are_zero_for_a_perfect_estimate_and_band_loss_sees_only_its_band():
    rng = torch.Generator().manual_seed(0)
    target = torch.randn(2, SR // 2, generator=rng) * 0.1
    windows: dict = {}
    assert float(mrstft_loss(target, target, windows)) == pytest.approx(0.0, abs=1e-6)
    assert float(mrstft_loss(0.5 * target, target, windows)) > 0.5
    # A change confined below 4 kHz costs nothing in a band loss that starts at 8 kHz.
    low = torch.from_numpy(np.sin(2 * np.pi * 500 * np.arange(SR // 2) / SR).astype(np.float32))
    start = torch.full((2,), int(8000 / (SR / 2048)))
    assert float(band_loss(target + low, target, start, windows)) < 0.02
    assert float(band_loss(target, target * 0.5, start, windows)) == pytest.approx(np.log(2), rel=0.02)


def test_sisdr_loss_is_minus_the_snr_of_an_orthogonal_error_whatever_the_scale():
    rng = torch.Generator().manual_seed(1)
    target = torch.randn(3, SR // 4, generator=rng) * 0.1
    target = target - target.mean(dim=-1, keepdim=True)
    noise = torch.randn(3, SR // 4, generator=rng)
    noise = noise - noise.mean(dim=-1, keepdim=True)
    noise = noise - ((noise * target).sum(-1) / target.square().sum(-1))[:, None] * target
    noise = noise * (target.norm(dim=-1) / noise.norm(dim=-1) * 10 ** (-20 / 20))[:, None]
    assert float(sisdr_loss(target + noise, target)) == pytest.approx(-20.0, abs=0.01)
    assert float(sisdr_loss(3 * (target + noise) + 0.5, target)) == pytest.approx(-20.0, abs=0.01)
    assert float(sisdr_loss(target, target)) == pytest.approx(-50.0, abs=1e-3)  # the cap
    quiet = (1e-9 * target).requires_grad_()  # nearly silent: still finite, with a finite gradient
    loss = sisdr_loss(quiet, target)
    loss.backward()
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(quiet.grad).all())


def test_shortfall_sdr_loss_sees_a_phase_rotation_and_stops_at_its_floor():
    rng = torch.Generator().manual_seed(3)
    target = torch.randn(2, SR // 4, generator=rng)
    assert float(shortfall_sdr_loss(target, target)) == 0.0
    # A 90-degree rotation of every component: the same magnitudes, an error as loud as the music
    # (SDR 3 dB under 0: the error is the difference of two equal, uncorrelated signals).
    rotated = torch.fft.irfft(torch.fft.rfft(target) * 1j, n=target.shape[-1])
    assert float(shortfall_sdr_loss(rotated, target)) == pytest.approx(50.0 + 3.01, abs=0.1)
    noise = torch.randn(2, SR // 4, generator=rng)
    noise = noise * (target.norm(dim=-1) / noise.norm(dim=-1) * 10 ** (-42 / 20))[:, None]  # SDR 42 dB
    assert float(shortfall_sdr_loss(target + noise, target)) == pytest.approx(8.0, abs=0.01)
    assert float(shortfall_sdr_loss(target + noise, target, floor_db=40.0)) == 0.0


@pytest.mark.parametrize("bad, message", [(dict(dnh_sdr_weight=-1.0), "dnh_sdr_weight must not be negative"),
                                          (dict(dnh_sdr_db=0.0), "dnh_sdr_db must be within")])
def test_dnh_sdr_settings_refuse_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(task="codec", **bad)


def test_dnh_sdr_alone_still_draws_clean_items():
    """The term needs clean items in the batch, with or without ``dnh``."""
    import restorelab.unet.train as train_module

    clips = [np.random.default_rng(0).standard_normal((1, SR * 3)).astype(np.float32) * 0.1]
    settings = TrainSettings(task="denoise", terms=("dnh_sdr",), batch=40, clean_share=0.5, domains=("hiss",))
    _, _, is_clean, _ = train_module.make_batch(clips, settings, np.random.default_rng(1))
    assert 5 < int(is_clean.sum()) < 35


def test_train_command_writes_a_checkpoint_the_restorer_loads(tmp_path, corpus, cache):
    out = tmp_path / "model.pt"
    code = cli.main(["train", "--task", "denoise", "--representation", "mel", "--channels", "4,8", "--steps", "3",
                     "--batch", "2", "--terms", "hf,dnh,sisdr", "--sisdr-weight", "0.1", "--max-hiss-snr-db", "50",
                     "--hiss-band-limit-share", "0.25", "--hiss-colours", "pink",
                     "--cache", str(cache), "-o", str(out)])
    assert code == 0
    model, meta = load_checkpoint(out)
    assert model.config.representation == "mel" and model.config.channels == (4, 8)
    assert meta["settings"]["steps"] == 3 and np.isfinite(meta["loss_history"][-1][1])
    assert meta["settings"]["terms"] == ["hf", "dnh", "sisdr"] and meta["settings"]["sisdr_weight"] == 0.1
    assert meta["settings"]["max_hiss_snr_db"] == 50.0
    assert meta["settings"]["hiss_band_limit_share"] == 0.25 and meta["settings"]["hiss_colours"] == ["pink"]
    from restorers import get_restorer

    audio = corpus[0][:, :SR]
    restored = get_restorer("unet_denoise", representation="mel", checkpoint=str(out))(audio, SR)
    assert restored.shape == audio.shape and np.all(np.isfinite(restored))


def test_train_without_data_says_how_to_build_it(tmp_path, capsys):
    code = cli.main(["train", "--task", "bwe", "--steps", "1", "--cache", str(tmp_path), "-o",
                     str(tmp_path / "m.pt")])
    assert code == 2 and "restorelab data build" in capsys.readouterr().err


def test_an_extension_checkpoint_ends_its_band_where_it_was_trained_to(tmp_path, corpus, cache):
    out = tmp_path / "bwe.pt"
    assert cli.main(["train", "--task", "bwe", "--representation", "linear", "--channels", "4,8", "--steps", "2",
                     "--batch", "2", "--max-frequency-hz", "17500", "--cache", str(cache), "-o", str(out)]) == 0
    from restorelab import degrade as dg
    from restorers import get_restorer

    limited = dg.band_limit(corpus[0][:, : 2 * SR], SR, np.random.default_rng(0), cutoff_hz=13000.0)
    trained = get_restorer("unet_bwe", representation="linear", checkpoint=str(out))
    assert trained.trained_stop_hz() == 17500.0
    default, wider = trained(limited, SR), get_restorer("unet_bwe", representation="linear", checkpoint=str(out),
                                                         max_frequency_hz=19500.0)(limited, SR)
    assert _band_power(default, 13500, 17000) > 1e3 * _band_power(limited, 13500, 17000)
    assert _band_power(default, 17700, SR / 2) < 1e-3 * _band_power(wider, 17700, SR / 2)


@pytest.mark.parametrize("codec", ["opus", "mp3", "vorbis"])
def test_codec_pairs_go_through_the_real_codec_and_keep_their_length(corpus, codec):
    clean = corpus[0][:1, : 2 * SR]
    settings = TrainSettings(task="codec", codecs=(codec,), codec_band_limit_share=0.0)
    degraded, target = codec_pair(clean, np.random.default_rng(0), settings)
    assert target is clean and degraded.shape == clean.shape and degraded.dtype == np.float32
    # A lossy coder changes the waveform, but keeps it recognisable (aligned, same level).
    assert 3.0 < snr_db(clean, degraded) < 40.0


def test_codec_pairs_band_limited_first_have_a_target_limited_alike(corpus):
    clean = corpus[0][:1, : 2 * SR]
    settings = TrainSettings(task="codec", codecs=("vorbis",), codec_band_limit_share=1.0)
    degraded, target = codec_pair(clean, np.random.default_rng(3), settings)
    # The 18 kHz tone is above every drawn limit (11-16 kHz): gone from both; the 3 kHz one is kept.
    assert band_level_db(target, clean, 17000, 19000) < -60
    assert band_level_db(degraded, clean, 17000, 19000) < -60
    assert band_level_db(target, clean, 2500, 3500) == pytest.approx(0.0, abs=0.1)


def test_codec_batches_mix_clean_items_for_do_no_harm(corpus):
    settings = TrainSettings(task="codec", batch=24, clean_share=0.5, codecs=("vorbis",))
    degraded, target, is_clean, plans = make_batch(corpus, settings, np.random.default_rng(0))
    assert plans == [] and 4 < int(is_clean.sum()) < 20
    torch.testing.assert_close(degraded[is_clean], target[is_clean])
    assert not torch.allclose(degraded[~is_clean], target[~is_clean])


def test_a_pool_made_by_worker_processes_serves_batches_at_varied_levels(corpus):
    settings = TrainSettings(task="codec", batch=4, pool=10, workers=2, codecs=("vorbis",), segment_s=0.5)
    weights = np.ones(1)
    pool = make_pool(corpus, weights, settings, log=lambda _: None)
    assert pool.degraded.shape == (10, SR // 2) and pool.target.shape == (10, SR // 2)
    assert len({hash(row.tobytes()) for row in pool.target}) == 10  # each worker drew its own excerpts
    degraded, target, is_clean, plans = pool.draw(64, np.random.default_rng(0))
    assert degraded.shape == (64, SR // 2) and plans == []
    # Each pair keeps its own degraded/target relation at whatever level it is drawn.
    ratio = np.linalg.norm(degraded.numpy(), axis=1) / np.linalg.norm(target.numpy(), axis=1)
    levels = np.linalg.norm(target.numpy(), axis=1)
    assert np.ptp(ratio) < 1.0 and np.ptp(20 * np.log10(levels)) > 6.0


def test_a_pool_folder_is_made_once_and_then_shared_by_candidates_with_other_models(tmp_path, corpus, cache,
                                                                                     monkeypatch):
    from restorelab.unet import train as T

    folder = tmp_path / "pool"
    made = []
    original = T.make_pool
    monkeypatch.setattr(T, "make_pool", lambda *a, **k: made.append(1) or original(*a, **k))
    settings = TrainSettings(task="codec", pool=6, workers=2, codecs=("vorbis",), segment_s=0.5)
    first = shared_pool(folder, corpus, np.ones(1), settings, cache, log=lambda _: None)
    wider = TrainSettings(task="codec", pool=6, workers=1, codecs=("vorbis",), segment_s=0.5, channels=(8, 16),
                          filter_frames=1, steps=7, batch=3, learning_rate=1e-3)
    second = shared_pool(folder, corpus, np.ones(1), wider, cache, log=lambda _: None)
    assert made == [1] and sorted(p.name for p in folder.iterdir()) == ["degraded.npy", "is_clean.npy",
                                                                         "key.json", "target.npy"]
    np.testing.assert_array_equal(second.degraded, first.degraded)
    np.testing.assert_array_equal(second.target, first.target)
    np.testing.assert_array_equal(second.is_clean, first.is_clean)
    degraded, target, _, _ = second.draw(4, np.random.default_rng(0))
    assert degraded.shape == (4, SR // 2) and np.all(np.isfinite(target.numpy()))
    assert not list(tmp_path.glob(".pool.*"))  # no staging folder left behind


@pytest.mark.parametrize("change, named", [(dict(seed=1), "seed"), (dict(codecs=("mp3",)), "codecs"),
                                           (dict(pool=7), "pool"), (dict(terms=("lsd",)), "clean_items")])
def test_a_pool_folder_made_with_other_data_settings_is_refused_naming_them(tmp_path, corpus, cache, change, named):
    base = dict(task="codec", pool=6, workers=1, codecs=("vorbis",), segment_s=0.5)
    shared_pool(tmp_path / "pool", corpus, np.ones(1), TrainSettings(**base), cache, log=lambda _: None)
    with pytest.raises(PoolFolderError, match=rf"made with other settings \({named}\)"):
        shared_pool(tmp_path / "pool", corpus, np.ones(1), TrainSettings(**{**base, **change}), cache,
                    log=lambda _: None)


def test_a_pool_folder_from_another_corpus_or_without_a_key_is_refused(tmp_path, corpus, cache):
    settings = TrainSettings(task="codec", pool=6, workers=1, codecs=("vorbis",), segment_s=0.5)
    shared_pool(tmp_path / "pool", corpus, np.ones(1), settings, cache, log=lambda _: None)
    with open(cache / "manifest.tsv", "a") as manifest:
        manifest.write("midi/other.flac\tmidi\tfreedoom\tBSD\t4.00\t20000\n")
    with pytest.raises(PoolFolderError, match="manifest_sha256"):
        shared_pool(tmp_path / "pool", corpus, np.ones(1), settings, cache, log=lambda _: None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PoolFolderError, match="not a pool folder"):
        shared_pool(tmp_path / "empty", corpus, np.ones(1), settings, cache, log=lambda _: None)
    with pytest.raises(PoolFolderError, match="not extension pairs"):
        shared_pool(tmp_path / "bwe", corpus, np.ones(1), TrainSettings(task="bwe", pool=6), cache)


def test_train_command_shares_a_pool_folder_and_refuses_one_of_other_settings(tmp_path, cache, capsys):
    common = ["train", "--task", "codec", "--steps", "1", "--batch", "2", "--pool", "4", "--workers", "1",
              "--codecs", "vorbis", "--cache", str(cache), "--pool-folder", str(tmp_path / "pool")]
    assert cli.main(common + ["--channels", "4,8", "-o", str(tmp_path / "a.pt")]) == 0
    assert cli.main(common + ["--channels", "8,16", "--filter-frames", "1", "-o", str(tmp_path / "b.pt")]) == 0
    assert "4 pairs from" in capsys.readouterr().err
    assert cli.main(common + ["--seed", "3", "-o", str(tmp_path / "c.pt")]) == 2
    assert "made with other settings (seed)" in capsys.readouterr().err
    assert not (tmp_path / "c.pt").exists()


@pytest.mark.parametrize("bad, message", [
    (dict(codecs=("aac",)), "codecs must be some of"), (dict(codecs=()), "codecs must be some of"),
    (dict(codec_band_limit_share=2.0), "codec_band_limit_share must be within"),
    (dict(pool=-1), "must not be negative"), (dict(split="test"), "split must be one of"),
    (dict(checkpoint_every=0), "checkpoint_every must be at least 1")])
def test_codec_settings_refuse_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(task="codec", **bad)


@pytest.mark.parametrize("filter_frames, terms", [(0, []), (1, ["--terms", "dnh,dnh_sdr,lsd,sisdr",
                                                                   "--dnh-sdr-weight", "0.1", "--dnh-sdr-db", "45"])])
def test_train_command_makes_a_codec_checkpoint_from_a_pool(tmp_path, corpus, cache, filter_frames, terms):
    out = tmp_path / "codec.pt"
    assert cli.main(["train", "--task", "codec", "--channels", "4,8", "--steps", "2", "--batch", "2",
                     "--pool", "4", "--workers", "2", "--codecs", "mp3,vorbis", "--cache", str(cache),
                     "--filter-frames", str(filter_frames), *terms, "-o", str(out)]) == 0
    model, meta = load_checkpoint(out)
    assert model.config.task == "codec" and meta["settings"]["codecs"] == ["mp3", "vorbis"]
    assert model.config.filter_frames == meta["settings"]["filter_frames"] == filter_frames
    assert meta["settings"]["pool"] == 4
    if terms:
        assert meta["settings"]["terms"] == ["dnh", "dnh_sdr", "lsd", "sisdr"]
        assert meta["settings"]["dnh_sdr_weight"] == 0.1 and meta["settings"]["dnh_sdr_db"] == 45.0
    else:
        assert meta["settings"]["terms"] == ["dnh", "lsd", "sisdr"]
    from restorers import get_restorer

    audio = corpus[0][:, :SR]
    restored = get_restorer("unet_codec", checkpoint=str(out))(audio, SR)
    assert restored.shape == audio.shape and np.all(np.isfinite(restored))


def test_a_run_writes_checkpoints_as_it_goes_each_saying_how_far_it_got(tmp_path, cache, monkeypatch):
    from restorelab.unet import train as T

    saved = []
    monkeypatch.setattr(T, "save_checkpoint", lambda path, model, meta: saved.append((path, meta["steps_done"])))
    settings = TrainSettings(task="codec", channels=(4, 8), steps=5, batch=2, segment_s=0.5, codecs=("vorbis",),
                             checkpoint_every=2)
    T.train(settings, cache, tmp_path / "m.pt", log=lambda _: None)
    assert saved == [(tmp_path / "m.pt", 2), (tmp_path / "m.pt", 4), (tmp_path / "m.pt", 5)]
    saved.clear()
    T.train(settings, cache, None, log=lambda _: None)
    assert saved == []  # nowhere to write


def test_stop_after_is_the_checkpoint_a_full_run_writes_at_that_step(tmp_path, cache, monkeypatch):
    """A run cut short by ``stop_after`` is the one the whole schedule passes through, weights and all."""
    from restorelab.unet import train as T

    saved = {}
    monkeypatch.setattr(T, "save_checkpoint", lambda path, model, meta: saved.setdefault(
        meta["steps_done"], {k: v.clone() for k, v in model.state_dict().items()}))
    settings = dict(task="denoise", channels=(4, 8), steps=6, batch=2, segment_s=0.5, domains=("hiss",), threads=1)
    T.train(TrainSettings(**settings, checkpoint_every=3), cache, tmp_path / "whole.pt", log=lambda _: None)
    whole = saved.pop(3)
    model, meta = T.train(TrainSettings(**settings, stop_after=3), cache, tmp_path / "cut.pt", log=lambda _: None)
    assert meta["steps_done"] == 3 and meta["settings"]["stop_after"] == 3 and meta["settings"]["steps"] == 6
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, whole[name])
    with pytest.raises(ValueError, match=r"stop_after must be within \[0, steps=6\]"):
        TrainSettings(**settings, stop_after=7)


def test_train_command_refuses_bad_settings_in_one_line(tmp_path, cache, capsys):
    assert cli.main(["train", "--task", "codec", "--codecs", "aac", "--cache", str(cache),
                     "-o", str(tmp_path / "m.pt")]) == 2
    assert "codecs must be some of opus, mp3, vorbis" in capsys.readouterr().err
    assert cli.main(["train", "--task", "denoise", "--filter-frames", "1", "--cache", str(cache),
                     "-o", str(tmp_path / "m.pt")]) == 2
    assert "filter_frames needs the codec task and the linear front end" in capsys.readouterr().err
