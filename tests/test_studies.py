"""The two multi-seed studies (explorer/studies.py): equal budgets per arm, the resumable time-boxed runner,
the summary against the checkpoints' own figures, what ships, and the panels that show it."""
from __future__ import annotations

import dataclasses
import json
import math
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from explorer import checkpoints, models, studies, training
from explorer.ui import study_view

SMALL = {"latent_dim": 4, "channels": 8, "hidden": 32}


# ---------------------------------------------------------------- the designs
def _network(arm) -> dict:
    """What the arm trains: its preset's config with the arm's overrides."""
    family, config, _, lr = training.PRESETS[arm.preset]
    return {"family": family, "lr": lr, **config, **arm.config}


def test_every_gamix_arm_trains_the_same_networks_epochs_and_data():
    arms = {a.name: a for a in studies.GAMIX.arms}
    assert set(arms) == {"vae", "patchgan", "mixture", "both", "mixture-noreg", "both-noreg"}
    assert len({a.epochs for a in arms.values()}) == 1 and not any(a.ldm for a in arms.values())
    built = {name: models.build(_network(a)["family"], {k: v for k, v in _network(a).items()
                                                         if k not in ("family", "lr")}).config_dict()
             for name, a in arms.items()}
    for name, cfg in built.items():  # the same encoder/decoder width, latent size and KL weight everywhere
        assert (cfg["latent_dim"], cfg["channels"], cfg["hidden"], cfg["beta"]) == (16, 16, 256, 1.0), name
        assert _network(arms[name])["lr"] == _network(arms["vae"])["lr"]
    # the two terms, on and off, and nothing else: PatchGAN arms share weight and start, mixtures share K
    assert {n for n, c in built.items() if c.get("adv_weight", 0) > 0} == {"patchgan", "both", "both-noreg"}
    assert len({(built[n]["adv_weight"], built[n]["adv_start"]) for n in ("patchgan", "both", "both-noreg")}) == 1
    assert {n for n, c in built.items() if "components" in c} == {"mixture", "both", "mixture-noreg", "both-noreg"}
    assert [built[n]["var_reg"] > 0 for n in ("mixture", "both", "mixture-noreg", "both-noreg")] == \
           [True, True, False, False]
    assert {k: v for k, v in built["mixture"].items() if k != "var_reg"} == \
           {k: v for k, v in built["mixture-noreg"].items() if k != "var_reg"}


def test_the_dae_sweep_gives_each_baseline_the_same_total_epochs_and_spans_weak_to_the_real_decoder():
    dae = [a for a in studies.DAE_SWEEP.arms if a.preset == "dae-16"]
    joint = {a.group["stage2"]: a for a in studies.DAE_SWEEP.arms if a.preset == "dae-16-joint"}
    assert len(dae) == len(studies.DAE_LEVELS) * len(studies.DAE_STAGE2) >= 8
    assert set(joint) == set(studies.DAE_STAGE2) and len(set(studies.DAE_STAGE2)) >= 2
    sizes = {}
    for a in dae:
        m = models.build("dae", {k: v for k, v in _network(a).items() if k not in ("family", "lr")})
        s2 = a.group["stage2"]
        assert m.stage_bounds(a.epochs) == [0, studies.DAE_STAGE1, studies.DAE_STAGE1 + s2]  # stage 1 fixed
        assert a.epochs == joint[s2].epochs and a.ldm_epochs == joint[s2].ldm_epochs        # same budget
        sizes.setdefault(s2, []).append(sum(p.numel() for p in m.aux_decoder.parameters()))
        if a.group["level"] == len(studies.DAE_LEVELS) - 1:  # the strongest stage-1 decoder is the real one
            assert [p.shape for p in m.aux_decoder.parameters()] == [p.shape for p in m.decoder.parameters()]
            assert m.config.aux_dropout == 0
    for s2, sz in sizes.items():
        assert sz == sorted(sz) and len(set(sz)) == len(sz), "levels go from weak to strong"


def test_the_dae_study_trains_both_arms_alike_and_its_shipped_record_holds_every_run(tmp_path):
    dae, joint = studies.DAE.arms
    assert (dae.preset, joint.preset) == ("dae-16", "dae-16-joint")
    assert dae.epochs == joint.epochs == training.PRESETS["dae-16"][2] == training.PRESETS["dae-16-joint"][2]
    assert dae.ldm_epochs == joint.ldm_epochs == training.PRESETS["ldm-dae-16"][2]
    record = studies.shipped_record(studies.DAE)
    assert len(studies.recorded_runs(studies.DAE, record)) == len(studies.DAE.runs())
    assert studies.status(studies.DAE, tmp_path, record=record)["left"] == []
    shipped = json.loads(record.read_text())
    again = studies.summarise(studies.DAE, tmp_path, record=record)  # the same table from the record alone
    assert again["seeds"] == shipped["seeds"] and again["history"] == shipped["history"]
    assert {k: {a: r[a]["values"] for a in ("dae", "joint")} for k, r in again["table"].items()} == \
           {k: {a: r[a]["values"] for a in ("dae", "joint")} for k, r in shipped["table"].items()}


# ---------------------------------------------------------------- running, resuming, the time box
def _tiny(study, arms, **kw):
    return dataclasses.replace(study, dataset="digits", seeds=(0, 1),
                               arms=tuple(dataclasses.replace(a, epochs=2, ldm_epochs=1) for a in study.arms
                                          if a.name in arms), **kw)


@pytest.fixture(scope="module")
def gamix_runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("gamix-study")
    study = _tiny(studies.GAMIX, ("vae", "mixture", "mixture-noreg"))
    st = studies.run(study, out, progress=False, limit=128, config=SMALL)  # the no-regulariser arm keeps its 0
    return study, out, st


def test_run_trains_every_arm_and_seed_then_skips_what_is_finished(gamix_runs):
    study, out, st = gamix_runs
    assert st["left"] == [] and len(st["done"]) == 6
    weights = sorted(out.glob("*/seed*/digits/*/" + checkpoints.WEIGHTS))
    assert len(weights) == 6
    stamp = [w.stat().st_mtime_ns for w in weights]
    again = studies.run(study, out, progress=False, limit=128, config=SMALL)
    assert again == st and [w.stat().st_mtime_ns for w in weights] == stamp   # nothing retrained
    noreg = json.loads((out / "mixture-noreg/seed0/digits/gmm-vae-16" / checkpoints.CONFIG).read_text())
    assert noreg["config"]["var_reg"] == 0.0 and noreg["command"].endswith("--arms mixture-noreg --seeds 0")


@pytest.mark.slow
def test_the_time_box_stops_between_epochs_and_a_later_run_continues(tmp_path, monkeypatch):
    study = _tiny(studies.GAMIX, ("vae",))
    clock = iter([0.0] + [10.0 ** 9] * 100)      # the training loop's clock: past the deadline after epoch 1
    with monkeypatch.context() as mp:
        mp.setattr(studies, "time", SimpleNamespace(time=lambda: 0.0))   # the deadline: one hour from 0
        mp.setattr(training, "time", SimpleNamespace(time=lambda: next(clock), perf_counter=time.perf_counter))
        st = studies.run(study, tmp_path, hours=1.0, progress=False, limit=64, config=SMALL, seeds=[0])
    assert st == {"done": [], "left": ["vae/seed0"]}
    resume = torch.load(tmp_path / "vae/seed0/digits/vae-16/resume.pt", weights_only=True)
    assert resume["epoch"] == 1
    st = studies.run(study, tmp_path, progress=False, limit=64, config=SMALL, seeds=[0])
    assert st == {"done": ["vae/seed0"], "left": []}
    info = json.loads((tmp_path / "vae/seed0/digits/vae-16" / checkpoints.CONFIG).read_text())
    assert [e["epoch"] for e in info["training"]["history"]] == [1, 2]   # resumed, not restarted
    assert not (tmp_path / "vae/seed0/digits/vae-16/resume.pt").exists()


@pytest.mark.slow
def test_a_run_another_process_holds_is_skipped(tmp_path):
    import fcntl

    study = _tiny(studies.GAMIX, ("vae",))
    root = studies.run_dir(tmp_path, study.arms[0], 0)
    root.mkdir(parents=True)
    with open(root / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        st = studies.run(study, tmp_path, progress=False, limit=64, config=SMALL, seeds=[0])
    assert st["left"] == ["vae/seed0"] and not (root / "digits").exists()


@pytest.mark.slow
def test_a_longer_stage_2_starting_from_the_kept_stage_1_is_the_run_from_scratch(tmp_path, capsys):
    """The sweep trains stage 1 once per (level, seed): the arm with the longer stage 2 starts from the state
    the shorter one kept after stage 1. That must be exactly the weights of training it from scratch."""
    from safetensors.torch import load_file

    small = {**SMALL, "aux_channels": 2, "aux_hidden": 16}
    arms = [a for a in studies.DAE_SWEEP.arms if a.group.get("level") == 0]          # l0 at both stage-2 lengths
    short, long_ = [dataclasses.replace(a, epochs=e, ldm=None, config={**a.config, "stage1_fraction": 2 / e})
                    for a, e in zip(arms, (4, 6))]
    short = dataclasses.replace(short, keep_epochs=(2,))
    long_ = dataclasses.replace(long_, start_from=(short.name, 2))
    study = dataclasses.replace(studies.DAE_SWEEP, dataset="digits", seeds=(0,), arms=(short, long_))
    studies.run(study, tmp_path / "shared", progress=False, limit=96, config=small)
    assert "resuming digits/dae-16 at epoch 2/6" in capsys.readouterr().out     # stage 1 was not trained again
    kept = tmp_path / "shared" / short.name / "seed0/digits/dae-16/resume-epoch2.pt"
    assert torch.load(kept, weights_only=True)["epoch"] == 2
    scratch = dataclasses.replace(study, arms=(dataclasses.replace(long_, start_from=None),))
    studies.run(scratch, tmp_path / "scratch", progress=False, limit=96, config=small)
    a = load_file(tmp_path / "shared" / long_.name / "seed0/digits/dae-16" / checkpoints.WEIGHTS)
    b = load_file(tmp_path / "scratch" / long_.name / "seed0/digits/dae-16" / checkpoints.WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    hist = json.loads((tmp_path / "shared" / long_.name / "seed0/digits/dae-16" / checkpoints.CONFIG).read_text())
    assert [e["stage"] for e in hist["training"]["history"]] == [1, 1, 2, 2, 2, 2]


# ---------------------------------------------------------------- reading back, verdicts, shipping
def test_the_summary_is_mean_and_sd_of_what_the_checkpoints_say(gamix_runs, tmp_path, monkeypatch):
    study, out, _ = gamix_runs
    monkeypatch.setitem(studies.STUDIES, "gamix", study)
    s = studies.summarise(study, out)
    assert s["runs_done"] == s["runs_total"] == 6
    for arm in ("vae", "mixture", "mixture-noreg"):
        mses = [json.loads((out / arm / f"seed{k}/digits" / study.arm(arm).preset / checkpoints.METRICS)
                           .read_text())["test_mse"] for k in (0, 1)]
        cell = s["table"]["test_mse"][arm]
        assert cell["values"] == mses
        assert cell["mean"] == pytest.approx(np.mean(mses)) and cell["sd"] == pytest.approx(np.std(mses, ddof=1))
    run = s["runs"]["mixture"]["0"]
    assert len(run["sigma_history"]) == 2 and len(run["sigma_history"][0]) == 3   # (epochs, components)
    assert run["sigma_min"] == min(run["sigma_per_component"]) and 1 <= run["components_used"] <= 3
    assert s["table"]["pi_entropy"]["vae"]["mean"] is None                        # a plain VAE has no mixture
    text = studies.table_markdown(s)
    assert "6 of 6 runs finished" in text and "plain VAE" in text and "± " in text
    assert any(line.startswith("smallest component sigma") and "regulariser on against off" in line
               for line in studies.verdict(s))
    with pytest.raises(checkpoints.CheckpointError, match="digits/gamix-vae-16 is not in the zoo"):
        studies.ship(s, root=tmp_path / "zoo")
    (tmp_path / "zoo/digits/gamix-vae-16").mkdir(parents=True)
    shipped = studies.ship(s, root=tmp_path / "zoo", note="Read plainly: a test note.")
    dst = shipped[0]
    assert dst == tmp_path / "zoo/digits/gamix-vae-16"
    assert json.loads((dst / "ablation.json").read_text())["note"] == "Read plainly: a test note."
    card = (dst / checkpoints.CARD).read_text()
    assert "## GAMIX-VAE ablation" in card and "![GAMIX-VAE ablation](ablation_sigma.png)" in card
    studies.ship(s, root=tmp_path / "zoo")                      # shipping again replaces the section
    assert (dst / checkpoints.CARD).read_text().count("## GAMIX-VAE ablation") == 1
    pixels, md = study_view.view(tmp_path / "zoo", "gamix")
    assert pixels.ndim == 3 and pixels.shape[2] == 3 and "6 of 6 runs finished" in md


def test_a_fresh_checkout_continues_a_study_from_its_shipped_record(gamix_runs, tmp_path, monkeypatch, capsys):
    """runs/ does not ship, the result file does: a clean clone counts its runs as finished, trains none of
    them again, and summarises to the same table; an arm redefined since, or a damaged record, is not trusted."""
    study, out, _ = gamix_runs
    summary = studies.summarise(study, out)
    record = tmp_path / "ablation.json"
    record.write_text(json.dumps({**summary, "note": "shipped"}))
    fresh = tmp_path / "fresh"
    assert studies.status(study, fresh, record=record) == studies.status(study, out)
    assert studies.run(study, fresh, progress=False, limit=128, config=SMALL, record=record)["left"] == []
    assert not fresh.exists()                                   # nothing trained again
    again = studies.summarise(study, fresh, record=record)
    assert again["table"] == summary["table"] and again["runs_done"] == 6 and again["hardware"] == summary["hardware"]

    edited = json.loads(record.read_text())                     # a run finished here beats the record's copy
    edited["runs"]["mixture"]["0"]["test_mse"] = 123.0
    record.write_text(json.dumps(edited))
    assert studies.summarise(study, out, record=record)["table"]["test_mse"]["mixture"]["values"] == \
        summary["table"]["test_mse"]["mixture"]["values"]
    assert 123.0 in studies.summarise(study, fresh, record=record)["table"]["test_mse"]["mixture"]["values"]

    longer = dataclasses.replace(study, arms=tuple(dataclasses.replace(a, epochs=3) if a.name == "vae" else a
                                                   for a in study.arms))
    assert studies.status(longer, fresh, record=record)["left"] == ["vae/seed0", "vae/seed1"]

    monkeypatch.setitem(studies.STUDIES, "gamix", study)        # the command line reads the shipped record
    monkeypatch.setattr(studies, "shipped_record", lambda st, root=None: record)
    studies.main(["status", "gamix", "--out", str(fresh)])
    assert capsys.readouterr().out.startswith("6 of 6 runs finished")
    studies.main(["status", "gamix", "--out", str(fresh), "--fresh"])
    assert capsys.readouterr().out.startswith("0 of 6 runs finished")

    record.write_text("{not json")
    with pytest.raises(ValueError, match="not a study result file.*--fresh"):
        studies.status(study, fresh, record=record)


def test_the_sweep_says_where_the_dae_beats_the_baseline():
    def cell(*vals):
        return {"mean": float(np.mean(vals)), "sd": float(np.std(vals, ddof=1)), "values": list(vals)}

    arms = [a.name for a in studies.DAE_SWEEP.arms]
    row = {a: cell(50.0, 52.0) for a in arms}
    row["dae-l0-s15"] = cell(30.0, 31.0)            # only the weakest decoder with long stage 2 wins
    table = {"fid_gmm": {"label": "FID, Gaussian-mixture samples", "lower_is_better": True, **row}}
    text = studies.where_decoupling_helps({"table": table})
    assert text.startswith("**The DAE gives better samples than the joint baseline with the same total epochs in 1 of 8")
    assert "stage-1 decoder very weak, stage 2 15 epochs: 30.5 against 51.0 (40% lower; beyond 2 sd" in text
    table["fid_gmm"]["dae-l0-s15"] = cell(60.0, 61.0)
    assert studies.where_decoupling_helps({"table": table}).startswith("**In none of the 8 finished comparisons")
    assert studies.where_decoupling_helps({"table": {}}) == "No point of the sweep has finished yet."
    summary = {"study": "dae-sweep", "table": table, "runs": {}}
    fig = studies.chart(summary)
    assert len([ax for ax in fig.axes if ax.get_visible()]) == 1    # only the metric that has figures


def test_the_panels_say_how_to_run_a_study_not_yet_shipped_and_name_a_damaged_one(tmp_path):
    pixels, md = study_view.view(tmp_path, "dae-sweep")
    assert pixels is None and "python -m explorer.studies run dae-sweep" in md
    bad = tmp_path / "fashion-mnist/dae-16"
    bad.mkdir(parents=True)
    (bad / "sweep.json").write_text("{not json")
    pixels, md = study_view.view(tmp_path, "dae-sweep")
    assert pixels is None and "damaged" in md and "summary dae-sweep --ship" in md and str(tmp_path) not in md


# ---------------------------------------------------------------- what the mixture reports
def test_mixture_usage_sees_one_component_taking_all_the_weight():
    m = models.build("gmm-vae", {**SMALL, "components": 3}).eval()
    x = torch.rand(64, 1, 28, 28)
    even = m.mixture_usage(x)
    assert 0 <= even["pi_entropy"] <= math.log(3) + 1e-6 and sum(even["pi_mean"]) == pytest.approx(1, abs=1e-3)
    last = m.encoder.net[-1]
    with torch.no_grad():                 # logits (the first K outputs) fixed at (12, 0, 0): pi(x) ~ (1, 0, 0)
        last.weight[:3].zero_()
        last.bias[:3] = torch.tensor([12.0, 0.0, 0.0])
    one = m.mixture_usage(x)
    assert one["components_used"] == 1 and one["pi_entropy"] < 0.01 and one["pi_mean"][0] > 0.99
    assert len(one["sigma_per_component"]) == 3 and all(s > 0 for s in one["sigma_per_component"])
    assert m.extra_metrics(x) == one


# ---------------------------------------------------------------- sampling: the prior or the aggregate posterior
@pytest.mark.slow
def test_posterior_draws_have_the_posterior_moments():
    vae = models.build("vae", SMALL).eval()
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        mu, logvar = vae.posterior(x)
    draws = torch.stack([vae.posterior_sample(x, torch.Generator().manual_seed(s)) for s in range(2000)])
    assert torch.allclose(draws.mean(0), mu, atol=0.1 * float((0.5 * logvar).exp().max()))
    assert torch.allclose(draws.std(0), (0.5 * logvar).exp(), rtol=0.1)
    m = models.build("gmm-vae", {**SMALL, "components": 3}).eval()
    with torch.no_grad():                                   # pi(x) ~ (0, 0, 1): every draw from component 3
        m.encoder.net[-1].weight[:3].zero_()
        m.encoder.net[-1].bias[:3] = torch.tensor([0.0, 0.0, 14.0])
        _, mu, logvar = m.posterior(x)
    draws = torch.stack([m.posterior_sample(x, torch.Generator().manual_seed(s)) for s in range(2000)])
    assert torch.allclose(draws.mean(0), mu[:, 2], atol=0.1 * float((0.5 * logvar[:, 2]).exp().max()))
    assert torch.allclose(draws.std(0), (0.5 * logvar[:, 2]).exp(), rtol=0.1)


def test_sampling_compares_prior_and_aggregate_posterior_at_the_same_n(tiny_zoo, tmp_path):
    import shutil

    result, priors = studies.sampling(root=tiny_zoo, dataset="digits", names=("vae-2d", "gmm-vae-16"), n=150,
                                      components=3)
    for row in result["models"].values():
        assert row["prior"]["fid_n"] == row["aggregate"]["fid_n"] == 150
        assert row["prior"]["fid_floor"] == pytest.approx(row["aggregate"]["fid_floor"])   # same references
        assert row["prior"]["fid"] != row["aggregate"]["fid"] and row["aggregate"]["fid"] > 0
    text = studies.sampling_markdown(result)
    assert "`vae-2d`" in text and "N = 150" in text and "3-Gaussian mixture" in text
    for name in ("vae-2d", "gmm-vae-16"):
        shutil.copytree(tiny_zoo / "digits" / name, tmp_path / "digits" / name)
    dst = studies.ship_sampling(result, priors, root=tmp_path, name="gmm-vae-16")
    assert json.loads((dst / studies.SAMPLING_FILE).read_text())["n"] == 150
    assert studies.SAMPLING_SECTION in (dst / checkpoints.CARD).read_text()
    for name, prior in priors.items():   # each model's fitted prior ships beside it, as the zoo reads it back
        back = checkpoints.Zoo(tmp_path).aggregate_prior(f"digits/{name}")
        assert torch.equal(back.sample(4, torch.Generator().manual_seed(0)), prior.sample(4, torch.Generator().manual_seed(0)))


@pytest.mark.browser
def test_the_model_zoo_shows_the_shipped_ablation_in_the_browser(gamix_runs, tiny_zoo, tmp_path, monkeypatch):
    import shutil

    playwright = pytest.importorskip("playwright.sync_api")
    from conftest import BROWSER_ARGS, launched_app

    study, out, _ = gamix_runs
    monkeypatch.setitem(studies.STUDIES, "gamix", study)
    zoo = shutil.copytree(tiny_zoo, tmp_path / "zoo")
    shutil.copytree(zoo / "digits/gmm-vae-16", zoo / "digits/gamix-vae-16")   # a checkpoint to ship it into
    studies.ship(studies.summarise(study, out), root=zoo)
    with launched_app(zoo) as (url, demo, store), playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url)
            page.get_by_role("tab", name="Model zoo").click()
            page.get_by_text("GAMIX-VAE ablation: which of its parts helps").click()
            # Gradio's <img loading="lazy"> loads only near the viewport: scroll to the image once it exists
            # (the chart sits ~2,500 px down; waiting for it unscrolled timed out)
            chart = page.locator("#zoo-ablation-chart img")
            chart.wait_for(state="attached", timeout=60_000)
            chart.scroll_into_view_if_needed()
            page.wait_for_function("() => { const i = document.querySelector('#zoo-ablation-chart img');"
                                   " return i && i.complete && i.naturalWidth > 500; }", timeout=60_000)
            text = page.locator("#zoo-ablation-text").inner_text()
            assert "6 of 6 runs finished" in text and "plain VAE" in text and "smallest component sigma" in text
        finally:
            browser.close()


def test_the_aggregate_prior_fits_where_the_codes_are_and_survives_json():
    from explorer.latents import AggregatePrior

    g = torch.Generator().manual_seed(0)
    left = torch.randn(3000, 2, generator=g) * 0.3 + torch.tensor([-4.0, 0.0])
    right = torch.randn(1000, 2, generator=g) * torch.tensor([0.5, 2.0]) + torch.tensor([4.0, 1.0])
    prior = AggregatePrior(2).fit(torch.cat([left, right]).numpy())
    z = prior.sample(20000, torch.Generator().manual_seed(1))
    near_right = z[:, 0] > 0
    assert float(near_right.float().mean()) == pytest.approx(0.25, abs=0.02)          # the mixture's weights
    assert torch.allclose(z[near_right].mean(0), torch.tensor([4.0, 1.0]), atol=0.1)
    assert torch.allclose(z[near_right].std(0), torch.tensor([0.5, 2.0]), rtol=0.1)   # its covariance
    assert not (z.abs()[:, 0] < 1.5).any()                                            # nothing in the hole
    again = AggregatePrior.from_dict(json.loads(json.dumps(prior.to_dict())), latent_dim=2)
    assert torch.equal(again.sample(5, torch.Generator().manual_seed(2)), prior.sample(5, torch.Generator().manual_seed(2)))
    bad = prior.to_dict() | {"weights": [0.5, 0.6]}
    with pytest.raises(ValueError, match="do not fit"):
        AggregatePrior.from_dict(bad)
    with pytest.raises(ValueError, match="do not fit"):
        AggregatePrior.from_dict(prior.to_dict(), latent_dim=16)
