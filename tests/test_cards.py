"""The card module every writer uses, the training run's config, and the models' declared capabilities."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from explorer import cards, checkpoints, datasets, models, training


def test_a_section_is_replaced_in_place_and_appended_once():
    card = "# m\n\n## Test metrics\na\n\n## Zoo comparison\nold\n\n## Notes\nkeep\n"
    out = cards.with_section(card, "## Zoo comparison", "## Zoo comparison\nnew\n")
    assert "old" not in out and "new" in out and out.index("## Test metrics") < out.index("new") < out.index("keep")
    assert cards.with_section("# m\n", "## Zoo comparison", "## Zoo comparison\nx\n") == "# m\n\n## Zoo comparison\nx\n"
    # a heading that goes on after a space is the same section
    dae = "# d\n\n## DAE vs joint baseline (3 seeds; this checkpoint is seed 0)\nold table\n\n## Zoo comparison\nz\n"
    out = cards.with_section(dae, "## DAE vs joint baseline", "## DAE vs joint baseline (2 seeds)\nnew table\n")
    assert out.count("## DAE vs joint baseline") == 1 and "old table" not in out and out.endswith("## Zoo comparison\nz\n")
    other = cards.with_section("## DAE vs joint baselines\nx\n", "## DAE vs joint baseline", "## DAE vs joint baseline\ny\n")
    assert other == "## DAE vs joint baselines\nx\n\n## DAE vs joint baseline\ny\n"  # another heading: appended


def test_update_section_writes_the_card_and_repeats_idempotently(tmp_path):
    (tmp_path / checkpoints.CARD).write_text("# m\n\n## Test metrics\na\n")
    for _ in range(2):
        cards.update_section(tmp_path, "## Zoo comparison", "## Zoo comparison\nfid 3\n")
    text = (tmp_path / checkpoints.CARD).read_text()
    assert text.count("## Zoo comparison") == 1 and text.startswith("# m\n\n## Test metrics\na\n")


def test_the_card_writer_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "README.md"
    cards.write_atomic(path, "old card\n")
    real = Path.write_text

    def half_then_fail(self, text, *a, **kw):  # the disk fills up halfway through the new card
        real(self, text[: len(text) // 2], *a, **kw)
        raise OSError("No space left on device")

    monkeypatch.setattr(Path, "write_text", half_then_fail)
    with pytest.raises(OSError):
        cards.write_atomic(path, "new card, much longer than the old one\n")
    monkeypatch.undo()
    assert path.read_text() == "old card\n"             # a reader still sees the whole old card
    assert sorted(os.listdir(tmp_path)) == ["README.md"]  # and no temporary file is left behind
    cards.write_metrics(tmp_path, {"fid": 1.5})
    assert json.loads((tmp_path / checkpoints.METRICS).read_text()) == {"fid": 1.5}


def test_rewrite_card_keeps_the_sections_other_tools_added(tmp_path):
    (tmp_path / checkpoints.CARD).write_text("# m\n\n## Test metrics\nold\n\n## Zoo comparison\nz\n")
    cards.rewrite_card(tmp_path, "# m\n\n## Data\nd\n\n## Test metrics\nnew\n")
    text = (tmp_path / checkpoints.CARD).read_text()
    assert "new" in text and "old" not in text and text.index("## Test metrics") < text.index("## Zoo comparison")


def test_a_training_config_takes_the_presets_defaults():
    cfg = training.TrainConfig("vae-2d", "digits")
    family, _, epochs, lr = training.PRESETS["vae-2d"]
    assert (cfg.family, cfg.epochs, cfg.lr) == (family, epochs * datasets.get("digits").epoch_scale, lr)
    assert cfg.name == "digits/vae-2d" and cfg.command == checkpoints.rebuild_command("digits/vae-2d")
    assert cfg.out_dir == checkpoints.ROOT / "digits" / "vae-2d"
    assert training.TrainConfig("vae-2d", "digits", 3, "/x", lr=0.1).epochs == 3
    with pytest.raises(ValueError, match="unknown preset 'wgan'"):
        training.TrainConfig("wgan")


FAMILY_CONFIGS = {"ae": {"latent_dim": 4}, "vae": {"latent_dim": 4}, "gmm-vae": {"latent_dim": 4},
                  "dae": {"latent_dim": 4}, "gan": {"latent_dim": 4}, "classifier": {},
                  "ddpm": {"channels": 8, "mults": [1, 2], "attention": False, "timesteps": 10}}


@pytest.mark.parametrize("family", sorted(models.FAMILIES))
def test_every_family_declares_its_capabilities(family):
    m = models.build(family, FAMILY_CONFIGS[family])
    expected = {"has_encoder": family in ("ae", "vae", "gmm-vae", "dae"),
                "is_variational": family in ("vae", "gmm-vae"), "staged": family == "dae",
                "fits_prior": family in ("ae", "dae"), "generates": family != "classifier"}
    assert {k: getattr(m, k) for k in expected} == expected
    assert m.stage_bounds(10)[0] == 0 and m.stage_bounds(10)[-1] == 10
    opt = m.configure_optimizers(1e-3)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for p in m.parameters())
    assert opt.param_groups[0]["betas"] == ((0.5, 0.999) if family == "gan" else (0.9, 0.999))
    assert isinstance(m.ema_decay, float)
    if not m.fits_prior:
        with pytest.raises(NotImplementedError):
            m.fit_prior(None)
