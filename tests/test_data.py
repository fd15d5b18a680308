"""The training-data builder: WAD lumps, MIDI variations, MMA songs, FluidSynth renders, filters."""

from __future__ import annotations

import io
import shutil
import struct

import mido
import numpy as np
import pytest

from restorelab.unet import corpus as data

SR = 44100


def _midi(program: int = 0, drum: bool = True, seconds: float = 4.0, note: int = 69) -> bytes:
    song = mido.MidiFile(ticks_per_beat=480)
    track = mido.MidiTrack()
    song.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=500000))
    track.append(mido.Message("program_change", channel=0, program=program))
    beats = int(seconds * 2)
    for _ in range(beats):
        track.append(mido.Message("note_on", channel=0, note=note, velocity=100))
        if drum:
            track.append(mido.Message("note_on", channel=9, note=36, velocity=90))
        track.append(mido.Message("note_off", channel=0, note=note, velocity=0, time=480))
    buffer = io.BytesIO()
    song.save(file=buffer)
    return buffer.getvalue()


def test_wad_music_lumps_yields_only_midi_music(tmp_path):
    lumps = [("D_E1M1", _midi()), ("MAP01", b"\x00" * 10), ("D_MUSLMP", b"MUS\x1a" + b"\x00" * 8)]
    body, directory, offset = b"", b"", 12
    for name, payload in lumps:
        directory += struct.pack("<ii8s", offset + len(body), len(payload), name.encode())
        body += payload
    wad = tmp_path / "test.wad"
    wad.write_bytes(struct.pack("<4sii", b"IWAD", len(lumps), 12 + len(body)) + body + directory)
    assert [(name, payload[:4]) for name, payload in data.wad_music_lumps(wad)] == [("D_E1M1", b"MThd")]
    (tmp_path / "bad.wad").write_bytes(b"NOPE" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not a WAD"):
        list(data.wad_music_lumps(tmp_path / "bad.wad"))


def test_variation_keeps_families_and_drums_scales_velocity_and_cuts():
    original = _midi(program=25, seconds=20.0)
    for seed in range(6):
        varied = mido.MidiFile(file=io.BytesIO(data.vary_midi(original, np.random.default_rng(seed), max_seconds=5.0)))
        messages = list(varied.tracks[0])
        programs = [m.program for m in messages if m.type == "program_change"]
        assert all(p // 8 == 25 // 8 for p in programs)  # guitars stay guitars
        assert all(m.note == 36 for m in messages if m.type == "note_on" and m.channel == 9)
        assert all(1 <= m.velocity <= 127 for m in messages if m.type == "note_on")
        assert 4.0 < varied.length < 7.5  # cut at 5 s (tempo scaled), plus the two-beat release
        assert sum(m.type == "control_change" and m.control == 123 for m in messages) == 16


def test_mma_song_is_a_chord_loop_over_the_groove():
    lines = data.mma_song("Rhumba", np.random.default_rng(0), bars=8).splitlines()
    assert lines[0].startswith("Tempo ") and lines[1] == "Groove Rhumba"
    assert [line.split()[0] for line in lines[2:]] == [str(i) for i in range(1, 9)]


@pytest.mark.skipif(shutil.which("fluidsynth") is None or not data.SOUND_FONT.is_file(),
                    reason="needs Debian's fluidsynth and fluid-soundfont-gm (scripts/install-test-deps.sh)")
def test_fluidsynth_render_plays_the_written_note():
    audio = data.render_midi(_midi(program=0, drum=False, seconds=2.0, note=69))  # piano A4
    assert audio.shape[0] == 2 and audio.shape[1] > SR
    spectrum = np.abs(np.fft.rfft(audio.mean(axis=0)[: 2 * SR]))
    freqs = np.fft.rfftfreq(2 * SR, 1 / SR)
    assert freqs[np.argmax(spectrum)] == pytest.approx(440.0, abs=3.0)


def test_trim_silence_keeps_the_sounding_part():
    audio = np.zeros((2, 5 * SR), np.float32)
    audio[:, 2 * SR : 3 * SR] = 0.5
    trimmed = data.trim_silence(audio, SR)
    assert trimmed.shape[-1] == SR and np.all(trimmed == 0.5)
    assert data.trim_silence(np.zeros((2, SR), np.float32), SR).shape[-1] == 0


def test_bandwidth_filter_tells_band_limited_from_full_band():
    from restorelab.degrade import band_limit

    noise = np.random.default_rng(0).standard_normal((2, 3 * SR)).astype(np.float32) * 0.1
    assert data.bandwidth_hz(noise, SR) > data.MIN_BANDWIDTH_HZ
    limited = band_limit(noise, SR, None, cutoff_hz=16000.0)
    assert data.bandwidth_hz(limited, SR) == pytest.approx(16000, abs=300)


def test_held_out_paths_come_from_the_reference_manifest(tmp_path):
    manifest = tmp_path / "MANIFEST.tsv"
    manifest.write_text("file\tdebian_package\tpath_in_package\tseconds\n"
                        "a.flac\twesnoth-1.16-music\t/usr/share/games/wesnoth/1.16/data/core/music/frantic.ogg\t10\n")
    assert data.held_out_paths(manifest) == {"/usr/share/games/wesnoth/1.16/data/core/music/frantic.ogg"}
    assert data.held_out_paths(tmp_path / "missing.tsv") == set()


def test_reading_an_unbuilt_cache_says_how_to_build_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="restorelab data build"):
        data.read_manifest(tmp_path)


def test_recordings_split_by_a_hash_of_package_and_path():
    splits = [data.split_of("wesnoth-1.16-music", f"recordings/wesnoth-1.16-music/track{i}.flac") for i in range(4000)]
    share = splits.count("validation") / len(splits)
    assert set(splits) == {"train", "validation"}
    assert abs(share - data.VALIDATION_SHARE) < 0.02  # binomial sd 0.006 at 4,000 names
    # The same track keeps its split, and the package is part of the key.
    assert data.split_of("a", "x.flac") == data.split_of("a", "x.flac")
    assert len({data.split_of(f"package{i}", "x.flac") for i in range(50)}) == 2


def _cache(folder, rows, kinds=None):
    import soundfile as sf

    lines = ["\t".join(data.MANIFEST_COLUMNS)]
    for i, (split, seconds) in enumerate(rows):
        source, bandwidth = (kinds or {}).get(i, ("recording", "20000"))
        relative = f"recordings/p/clip{i}.flac"
        (folder / "recordings" / "p").mkdir(parents=True, exist_ok=True)
        audio = np.stack([np.full(int(seconds * SR), 0.25), np.full(int(seconds * SR), -0.5)]).astype(np.float32)
        audio[:, :: 2] *= -1
        sf.write(folder / relative, audio.T, SR, subtype="PCM_24")
        lines.append("\t".join([relative, source, "wesnoth-1.16-music", "GPL", f"{seconds:.2f}", bandwidth, split]))
    (folder / "manifest.tsv").write_text("\n".join(lines) + "\n")


def test_manifest_keeps_the_split_and_reads_an_older_one_as_train(tmp_path):
    _cache(tmp_path, [("train", 1.0), ("validation", 1.0)])
    assert [item.split for item in data.read_manifest(tmp_path)] == ["train", "validation"]
    older = tmp_path / "older"
    older.mkdir()
    (older / "manifest.tsv").write_text("file\tsource\tpackage\tlicence\tseconds\tbandwidth_hz\n"
                                        "a.flac\tmidi\tfreedoom\tBSD\t4.00\t20000\n")
    assert [item.split for item in data.read_manifest(older)] == ["train"]


def test_subset_takes_one_mono_excerpt_per_clip_of_its_split(tmp_path):
    import soundfile as sf

    source = tmp_path / "cache"
    _cache(source, [("train", 2.0), ("validation", 2.0), ("train", 0.5), ("train", 3.0)])
    out = tmp_path / "subset"
    items = data.subset(source, out, seconds=1.0, max_mb=10.0, split="train", log=lambda _: None)
    # The 0.5 s clip is too short; the validation clip is not of the split.
    assert len(items) == 2 and all(item.split == "train" for item in items)
    assert {item.file.split("-")[0] for item in items} == {"recordings/p/clip0", "recordings/p/clip3"}
    for item in data.read_manifest(out):
        audio, rate = sf.read(out / item.file, always_2d=True)
        assert rate == SR and audio.shape == (SR, 1) and item.seconds == 1.0
        # One channel (+-0.25 or +-0.5) or their mid (+-0.125), at 16 bits.
        assert np.abs(audio).max() in (pytest.approx(0.25, abs=1e-4), pytest.approx(0.5, abs=1e-4),
                                       pytest.approx(0.125, abs=1e-4))
        assert sf.info(str(out / item.file)).subtype == "PCM_16"
    held = data.subset(source, tmp_path / "held", seconds=1.0, split="validation", log=lambda _: None)
    assert [item.split for item in data.read_manifest(tmp_path / "held")] == ["validation"] == [i.split for i in held]


def test_subset_takes_only_the_source_and_band_asked_for(tmp_path):
    source = tmp_path / "cache"
    _cache(source, [("train", 2.0)] * 4, kinds={1: ("midi", "21000"), 2: ("recording", "18999")})
    kept = data.subset(source, tmp_path / "s", seconds=1.0, source="recording", min_bandwidth_hz=19000,
                       log=lambda _: None)
    assert sorted(item.file.split("-")[0] for item in kept) == ["recordings/p/clip0", "recordings/p/clip3"]
    midi = data.subset(source, tmp_path / "m", seconds=1.0, source="midi", log=lambda _: None)
    assert [item.source for item in midi] == ["midi"] and midi[0].bandwidth_hz == 21000


def test_subset_stops_at_its_size_budget(tmp_path):
    source = tmp_path / "cache"
    _cache(source, [("train", 2.0)] * 4)
    items = data.subset(source, tmp_path / "subset", seconds=1.0, max_mb=1e-6, log=lambda _: None)
    assert len(items) == 1  # the first excerpt is over the budget: it is kept, and nothing after it


def test_recording_pieces_cut_the_sounding_part_in_order():
    audio = np.zeros((2, 40 * SR), dtype=np.float32)
    audio[:, 2 * SR : 34 * SR] = np.arange(32 * SR, dtype=np.float32) / (32 * SR) + 0.1  # 2 s of silence each side
    pieces = data.recording_pieces(audio, SR, clip_seconds=10, max_seconds=100)
    # 32 s of sound: 10, 10, 10 and a 2 s tail, which is dropped.
    assert [p.shape[-1] for p in pieces] == [10 * SR] * 3
    assert np.array_equal(np.concatenate(pieces, axis=-1), audio[:, 2 * SR : 32 * SR])
    # At most max_seconds of the track; a last piece of exactly 5 s is kept.
    capped = data.recording_pieces(audio, SR, clip_seconds=10, max_seconds=25)
    assert [p.shape[-1] for p in capped] == [10 * SR, 10 * SR, 5 * SR]
    assert data.recording_pieces(np.zeros((2, SR), np.float32), SR, 10, 100) == []


def _vorbis(path, seconds, seed, cutoff_hz=None):
    import soundfile as sf
    from scipy.signal import butter, sosfilt

    noise = np.random.default_rng(seed).standard_normal((int(seconds * SR), 2)) * 0.1
    if cutoff_hz:
        noise = sosfilt(butter(8, cutoff_hz, fs=SR, output="sos"), noise, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, noise.astype(np.float32), SR, format="OGG", subtype="VORBIS", compression_level=0.0)


def test_build_cuts_recordings_into_pieces_from_folders_and_archives(tmp_path, monkeypatch):
    import zipfile

    folder, staging = tmp_path / "music", tmp_path / "staging"
    _vorbis(folder / "long.ogg", 27, seed=1)
    _vorbis(folder / "held.ogg", 12, seed=2)
    _vorbis(staging / "sound/cdtracks/song.ogg", 12, seed=3)
    _vorbis(staging / "sound/cdtracks/dull.ogg", 12, seed=4, cutoff_hz=12000)
    _vorbis(staging / "sound/misc/jingle.ogg", 12, seed=5)
    archive = tmp_path / "music.pk3"
    with zipfile.ZipFile(archive, "w") as bundle:
        for name in ("sound/cdtracks/song.ogg", "sound/cdtracks/dull.ogg", "sound/misc/jingle.ogg"):
            bundle.write(staging / name, name)
    held_out = tmp_path / "MANIFEST.tsv"
    held_out.write_text(f"file\tdebian_package\tpath_in_package\tseconds\nh.flac\tx\t{folder / 'held.ogg'}\t10\n")
    monkeypatch.setattr(data, "FREEDOOM_WADS", ())
    monkeypatch.setattr(data, "OPENMSX_DIR", tmp_path / "none")
    monkeypatch.setattr(data, "RECORDING_DIRS", {"wesnoth-1.16-music": folder})
    monkeypatch.setattr(data, "RECORDING_ARCHIVES", {"nexuiz-music": (archive, "sound/cdtracks")})
    cache, lines = tmp_path / "cache", []
    items = data.build(cache, clip_seconds=10, recording_seconds=25, held_out_manifest=held_out, mma_songs=0,
                       log=lines.append)

    # 25 s of the 27 s track in pieces of 10, 10 and 5 s; the archive's 12 s track gives one piece
    # (its 2 s tail is dropped); the dull track and the track outside the folder are not taken.
    assert [(i.file, i.package, round(i.seconds)) for i in items] == [
        ("recordings/wesnoth-1.16-music/long.flac", "wesnoth-1.16-music", 10),
        ("recordings/wesnoth-1.16-music/long-part2.flac", "wesnoth-1.16-music", 10),
        ("recordings/wesnoth-1.16-music/long-part3.flac", "wesnoth-1.16-music", 5),
        ("recordings/nexuiz-music/song.flac", "nexuiz-music", 10)]
    assert {i.split for i in items[:3]} == {data.split_of("wesnoth-1.16-music", "recordings/wesnoth-1.16-music/long.flac")}
    assert all(i.bandwidth_hz >= data.MIN_BANDWIDTH_HZ for i in items)
    assert f"held out for evaluation: {folder / 'held.ogg'}" in lines
    assert any(line.startswith("skipped dull.ogg: bandwidth") for line in lines)
    assert [i.file for i in data.read_manifest(cache)] == [i.file for i in items]
    assert data.read_manifest(cache)[3].package == "nexuiz-music"
    assert "GPL-2.0+" in (cache / "manifest.tsv").read_text().splitlines()[4]

    # Resuming reads the pieces already written: a track whose pieces are all there is not decoded.
    decoded, measured = [], []
    original, width = data._load_recording, data.bandwidth_hz
    monkeypatch.setattr(data, "_load_recording", lambda path, log: decoded.append(path.name) or original(path, log))
    monkeypatch.setattr(data, "bandwidth_hz", lambda audio, rate: measured.append(1) or width(audio, rate))
    again = data.build(cache, clip_seconds=10, recording_seconds=25, held_out_manifest=held_out, mma_songs=0,
                       log=lambda _: None)
    assert again == items
    assert "long.ogg" not in decoded and "song.ogg" in decoded  # its second piece was too short to write
    # Only the decoded tracks are measured (song.ogg, and dull.ogg, skipped again); the pieces
    # already written keep the bandwidth their manifest holds.
    assert sorted(decoded) == ["dull.ogg", "song.ogg"] and len(measured) == 2
